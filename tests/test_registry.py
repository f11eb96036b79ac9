"""The experiment registry: adding an experiment is one module plus one registry entry.

A toy experiment, written here as a module of its own, is registered once; it then appears in
``connlab --help``, in the demo's plan (at its lecture place), runs as a command, and gets its
own section, with its own verdict rule, in ``connlab report`` and in the demo's report.html.
"""

from __future__ import annotations

import json
import re
import textwrap

import pytest

from connlab import cli
from connlab.experiments import REGISTRY, DemoStep, Experiment, lecture_order, register, unregister

TOY = textwrap.dedent('''
    """``connlab toy``: a one-number experiment for the registry test."""
    from dataclasses import dataclass
    from pathlib import Path

    from connlab.experiments.section import SUPPORTED, NOT_SUPPORTED, Run, Section, Table, num, with_figures

    THRESHOLD = 5    # the toy claim: the size reaches 5


    @dataclass(frozen=True)
    class ToyExperiment:
        size: int = 3
        device: str = "auto"


    def add_arguments(p):
        p.add_argument("--size", type=int, default=3)
        p.add_argument("--device", default="auto")
        p.add_argument("--out", type=Path, default=None)
        p.add_argument("--resume", action="store_true")
        p.set_defaults(run=run)


    def run(args):
        from connlab.runs import prepare_run, write_summary

        out, cfg = prepare_run(args.out, "toy", ToyExperiment(args.size, args.device), args.resume)
        write_summary(out, {"experiment": "toy", "size": cfg.size})
        return 0


    def section(run: Run) -> Section:
        size = num(run.summary, "size")
        ok = size is not None and size >= THRESHOLD
        return with_figures(Section("toy", "A toy part", "The size reaches the threshold.",
                                    SUPPORTED if ok else NOT_SUPPORTED, f"toy size {size} against {THRESHOLD}",
                                    tables=[Table(["quantity", "value"], [["size", str(size)]])]), run)
''')


@pytest.fixture
def toy(tmp_path, monkeypatch):
    (tmp_path / "toy_module").mkdir()
    (tmp_path / "toy_module" / "connlab_toy_experiment.py").write_text(TOY)
    monkeypatch.syspath_prepend(str(tmp_path / "toy_module"))
    entry = register(Experiment("toy", "a toy experiment for the registry test", "connlab_toy_experiment",
                                lecture=25, config="ToyExperiment", section="section",
                                demo=(DemoStep(("--size", "7"), ("--size", "70")),)))
    yield entry
    unregister("toy")


def test_a_registered_experiment_appears_in_help_demo_and_report(toy, tmp_path, capsys):
    assert cli.main(["--help"]) == 0
    assert re.search(r"^\s+toy\s+a toy experiment for the registry test$", capsys.readouterr().out, re.M)
    assert cli.main(["toy", "--help"]) == 0
    assert "--size" in capsys.readouterr().out

    from connlab.demo import plan

    names = [p.name for p in plan(False, "mnist-embedded", None, "cpu")]
    assert names[names.index("rnn") + 1] == "toy" and names[names.index("toy") + 1] == "skipmlp"
    part = next(p for p in plan(True, "mnist", None, "cpu") if p.name == "toy")
    assert part.argv == ("toy", "--size", "70", "--device", "cpu")

    # the command runs and the report renders its section with its own verdict
    assert cli.main(["toy", "--size", "2", "--out", str(tmp_path / "toy-run")]) == 0
    assert cli.main(["report", str(tmp_path / "toy-run"), "--out", str(tmp_path / "r.html")]) == 0
    page = (tmp_path / "r.html").read_text()
    assert '<h2 id="toy">A toy part</h2>' in page
    assert "<b>not supported at this budget</b>: toy size 2.0 against 5" in page
    assert toy.config_class.__name__ == "ToyExperiment"


def test_the_demo_runs_a_registered_experiment_and_reports_it(toy, tmp_path):
    out = tmp_path / "demo"
    assert cli.main(["demo", "--out", str(out), "--only", "toy", "--device", "cpu"]) == 0
    record = json.loads((out / "demo.json").read_text())
    assert [(p["name"], p["status"]) for p in record["parts"]] == [("toy", "done")]
    assert json.loads((out / "toy" / "summary.json").read_text())["size"] == 7
    assert "<b>supported</b>: toy size 7.0 against 5" in (out / "report.html").read_text()


def test_a_crashing_section_builder_fails_the_report(toy, tmp_path, monkeypatch):
    """A builder's exception is a bug: the report does not turn it into 'not measured'."""
    import connlab_toy_experiment

    def broken(run):
        raise KeyError("size")

    monkeypatch.setattr(connlab_toy_experiment, "section", broken)
    assert cli.main(["toy", "--out", str(tmp_path / "toy-run")]) == 0
    with pytest.raises(KeyError):
        cli.main(["report", str(tmp_path / "toy-run"), "--out", str(tmp_path / "r.html")])
    assert not (tmp_path / "r.html").exists()


def test_registry_is_the_one_list():
    """Every command of the CLI comes from the registry; every lecture part has a section and a demo step."""
    parser = cli.build_parser([])
    commands = next(a for a in parser._actions if a.dest == "command").choices
    assert list(commands) == list(REGISTRY)
    for entry in lecture_order():
        assert entry.section and entry.demo, entry.name
    import connlab.cli as cli_module

    for stale in ("COMMANDS", "SINGLE_PROCESS"):
        assert not hasattr(cli_module, stale)


def test_help_imports_no_experiment_module():
    import subprocess
    import sys

    code = ("import sys; from connlab.cli import main; main(['--help']); "
            "print(sorted(m for m in sys.modules if m.startswith(('torch', 'connlab.experiments.')) "
            "and m not in ('connlab.experiments.registry',)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"


def test_the_registry_names_each_notebook_and_each_explorer_panel_once():
    """The registry is the one list: every exercise notebook belongs to one command, and every explorer panel
    names an exporter that exists and a <section> the page template holds."""
    from pathlib import Path

    from connlab.explore import export
    from connlab.explore.page import WEB, parts

    root = Path(__file__).resolve().parents[1]
    named = sorted(e.notebook for e in REGISTRY.values() if e.notebook)
    assert named == sorted(p.stem for p in (root / "notebooks" / "src").glob("[0-9][0-9]_*.py")) and named
    panels = [p for e in REGISTRY.values() for p in e.panels]
    assert len({p.part for p in panels}) == len({p.element for p in panels}) == len(panels) >= 6
    assert all(callable(getattr(export, p.export, None)) for p in panels)
    template = (WEB / "explorer.html").read_text()
    assert all(f'<section id="{p.element}"' in template for p in panels)
    assert [p.experiment for p in parts()] == [p.part for e in lecture_order() for p in e.panels]
