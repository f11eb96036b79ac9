"""The CLI's error contract: a UserError is one line and exit 2; anything else is a bug with its traceback.

Also: ``--out`` under a folder that cannot be created is a user error for every command, and
``--resume`` on a run killed before its first checkpoint starts that run from the beginning.
"""

from __future__ import annotations

import json

import pytest

from connlab.cli import main
from connlab.experiments import REGISTRY

# Every command that makes a run folder with --out (a sub-command where it has one).
OUT_COMMANDS = [["diffusion", "train"] if name == "diffusion" else [name]
                for name, entry in REGISTRY.items() if name not in ("data", "report", "explore", "grade")]


@pytest.mark.parametrize("command", OUT_COMMANDS, ids=" ".join)
def test_out_that_cannot_be_created_is_one_line_and_exit_2(command, capsys):
    assert main([*command, "--out", "/proc/connlab-test/run", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "/proc/connlab-test/run" in err and "error" in err


@pytest.mark.parametrize("command, experiment", [("report", "gates"), ("explore", "vit")])
def test_page_out_that_cannot_be_created_is_one_line_and_exit_2(command, experiment, tmp_path, capsys):
    run = tmp_path / "run"  # a run folder the command accepts, so the --out is what fails
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"experiment": experiment, "config": {}}))
    assert main([command, str(run), "--out", "/proc/connlab-test/page.html"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "/proc/connlab-test" in err


def test_a_value_error_is_a_bug_and_keeps_its_traceback(monkeypatch):
    from connlab.experiments import data_info

    def broken(args):
        raise ValueError("an internal bug")

    monkeypatch.setattr(data_info, "run", broken)
    with pytest.raises(ValueError, match="an internal bug"):
        main(["data"])


def test_a_bad_model_flag_is_still_a_user_error(tmp_path, capsys):
    """Model configs raise ValueError for values the user chose; the experiment turns those into UserError."""
    assert main(["vit", "--dim", "30", "--heads", "4", "--out", str(tmp_path / "run")]) == 2
    assert "not divisible by 4 heads" in capsys.readouterr().err


@pytest.mark.parametrize("command, config", [
    ("classifier", dict(epochs=1, limit=100, dataset="mnist-embedded", device="cpu", checkpoint_every=5)),
    ("attention", dict(epochs=1, train_size=64, test_size=16, length=4, dim=8, depth=1, heads=1, device="cpu")),
])
def test_resume_before_the_first_checkpoint_starts_the_run(command, config, tmp_path):
    """A run killed after writing config.json but before its first checkpoint (a requeued job)."""
    from connlab.runs import prepare_run

    entry = REGISTRY[command]
    out = tmp_path / "run"
    prepare_run(out, command, entry.config_class(**config), resume=False)
    assert sorted(p.name for p in out.iterdir() if p.name != ".connlab-lock") == ["config.json"]
    assert main([command, "--resume", "--out", str(out)]) == 0
    assert (out / "summary.json").is_file()
    saved = json.loads((out / "config.json").read_text())["config"]
    assert all(saved[k] == v for k, v in config.items())
