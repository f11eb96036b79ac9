"""One source of defaults: flags generated from config dataclasses, presets, --resume with other flags."""

from __future__ import annotations

import argparse
from dataclasses import MISSING, fields

import pytest

from connlab.cli import main
from connlab.experiments import REGISTRY
from connlab.experiments.common import DataSettings, TrainingSettings


def parse(command: str, *argv: str):
    """The config ``connlab COMMAND ARGV`` would run with (argparse and presets only; nothing runs)."""
    entry = REGISTRY[command]
    parser = argparse.ArgumentParser()
    entry.add_arguments(parser)
    if command == "diffusion":
        from connlab.experiments.diffusion import config_from_args

        return config_from_args(parser.parse_args(["train", *argv]))
    return entry.config_class.from_args(parser.parse_args(list(argv)))


TRAINING = [name for name, e in REGISTRY.items() if e.config and issubclass(e.config_class, TrainingSettings)]


def test_every_training_command_has_every_shared_flag():
    assert set(TRAINING) >= {"gates", "rnn", "attention", "autoencoder", "diffusion", "vit", "classifier"}
    for name in TRAINING:
        defaults = parse(name)
        for f in fields(TrainingSettings):
            option = "--" + f.name.replace("_", "-")
            value = {"epochs": "2", "batch_size": "3", "lr": "0.5", "seed": "7", "device": "cpu",
                     "checkpoint_every": "9"}.get(f.name, "off" if f.name != "precision" else "fp32")
            cfg = parse(name, option, value)
            assert str(getattr(cfg, f.name)) == value and getattr(defaults, f.name) is not None, (name, option)


def test_train_config_copies_every_shared_field_by_name():
    from connlab.experiments.attention import AttentionExperiment
    from connlab.train import TrainConfig

    cfg = AttentionExperiment(epochs=2, lr=0.01, weight_decay=0.2, warmup_steps=3, cuda_graph="off",
                              malloc_cache="off", channels_last="on")
    train = cfg.train_config(optimizer="adamw")
    shared = {f.name for f in fields(TrainConfig)} & {f.name for f in fields(cfg)}
    assert {"weight_decay", "warmup_steps", "malloc_cache", "channels_last"} <= shared
    assert all(getattr(train, n) == getattr(cfg, n) for n in shared) and train.optimizer == "adamw"


def test_a_subclass_default_keeps_the_flag_help(capsys):
    assert main(["rnn", "--help"]) == 0
    out = capsys.readouterr().out
    assert "passes over the training set (default 5; --full: 10)" in " ".join(out.split())


@pytest.mark.parametrize("command, argv, expected", [
    # a flag given on the command line wins over the preset, even when it equals its default
    ("vit", ["--full", "--dim", "64"], dict(dim=64, depth=6, epochs=30, heads=4)),
    ("vit", ["--full"], dict(dim=128, depth=6)),
    ("vit", [], dict(dim=64, depth=3, epochs=6)),
    ("rnn", ["--full"], dict(lengths=(10, 50, 100, 200, 400), epochs=10)),
    ("rnn", ["--full", "--epochs", "5", "--lengths", "10,50,100"], dict(lengths=(10, 50, 100), epochs=5)),
    ("depth", ["--full"], dict(depths=(2, 8, 20, 32, 56), limit=None)),
    ("depth", ["--full", "--limit", "2000"], dict(limit=2000)),
    ("depth", [], dict(depths=(2, 8, 20), limit=2000)),
    ("classifier", ["--full"], dict(epochs=6, full=True)),
    ("classifier", ["--full", "--epochs", "5"], dict(epochs=5, full=True)),
    ("diffusion", ["--preset", "pixel", "--epochs", "40"], dict(space="pixel", base_channels=16, epochs=40)),
    ("diffusion", ["--preset", "demo", "--ema-decay", "0.999"], dict(ema_decay=0.999, epochs=4, guidance=2.0)),
    ("diffusion", ["--no-attention"], dict(attention=False, class_cond=True)),
    ("skipmlp", ["--width", "7"], dict(hidden=7)),
])
def test_presets_apply_only_to_flags_not_given(command, argv, expected):
    cfg = parse(command, *argv)
    assert {k: getattr(cfg, k) for k in expected} == expected


def test_resume_refuses_flags_that_differ_from_the_saved_config(tmp_path, capsys):
    from connlab.experiments.gates import GatesExperiment
    from connlab.runs import prepare_run

    out = tmp_path / "run"
    prepare_run(out, "gates", GatesExperiment(epochs=2, train_points=100, device="cpu"), resume=False)
    assert main(["gates", "--resume", "--out", str(out), "--epochs", "3", "--k", "4"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert "--epochs 3 (saved: 2)" in err and "--k 4 (saved: 3)" in err
    # the same values as saved are accepted: the run continues with its saved config
    _, cfg = prepare_run(out, "gates", GatesExperiment(), resume=True, given={"epochs": 2, "device": "cpu"})
    assert (cfg.epochs, cfg.train_points) == (2, 100)


def test_an_old_config_json_still_loads(tmp_path):
    """A run folder saved before a field existed resumes with that field's default."""
    import json

    from connlab.experiments.rnn import RNNExperiment
    from connlab.runs import prepare_run

    out = tmp_path / "old"
    out.mkdir()
    (out / "config.json").write_text(json.dumps({"experiment": "rnn", "config": {
        "lengths": [4, 8], "models": ["rnn", "gru"], "hidden": 8, "epochs": 1, "retired_field": 1}}))
    _, cfg = prepare_run(out, "rnn", RNNExperiment(), resume=True, given={})
    assert cfg.lengths == (4, 8) and cfg.models == ("rnn", "gru") and cfg.precision == "fp32"


def test_data_flags_only_where_images_are_read():
    for name in TRAINING:
        has_data = issubclass(REGISTRY[name].config_class, DataSettings)
        assert has_data == (name not in ("gates", "rnn", "attention")), name


def test_the_demo_resumes_an_interrupted_part_with_its_own_flags(tmp_path, monkeypatch):
    """The demo passes a part's flags again with --resume: equal to the saved config, so not refused."""
    import json
    from dataclasses import replace

    from connlab.experiments import DemoStep

    tiny = DemoStep(("--epochs", "2", "--train-points", "256", "--checkpoint-every", "1"), ())
    monkeypatch.setitem(REGISTRY, "gates", replace(REGISTRY["gates"], demo=(tiny,)))
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--only", "gates", "--device", "cpu", "--no-report"]) == 0
    (out / "gates" / "summary.json").unlink()  # as if killed after its checkpoints, before the end
    assert main(["demo", "--out", str(out), "--only", "gates", "--resume", "--no-report"]) == 0
    record = json.loads((out / "demo.json").read_text())
    assert record["parts"][0]["status"] == "done" and "--resume" in record["parts"][0]["command"]
    assert (out / "gates" / "summary.json").is_file()


# --- every command's flags come from a config dataclass, and each default is declared once -------------

# Options that say where a run is, not what it is (``add_run_flags``), and the report / explore commands'
# page file: not config fields. Positional run folders are not options.
WHERE = {"--out", "--resume",
         "--summary"}  # autoencoder: print the model summary table and exit, a mode of the command, not a setting
WHERE_ONLY = {"report", "explore"}   # commands whose only options are where to write


def command_parsers():
    """(command name, action, parser, module) of every command and sub-command in the registry."""
    import importlib

    from connlab.cli import Parser

    for name, entry in REGISTRY.items():
        parser = Parser(prog=f"connlab {name}")
        entry.add_arguments(parser)
        module = importlib.import_module(entry.module)
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if subs:
            for action, sub in subs[0].choices.items():
                yield name, action, sub, module
        else:
            yield name, "", parser, module


def options(parser) -> list[argparse.Action]:
    return [a for a in parser._actions if a.option_strings and not isinstance(a, argparse._HelpAction)]


def flag_problems(name: str, action: str, parser, module) -> tuple[list[str], type | None]:
    """What is wrong with one (sub-)command's flags, and the config dataclass they come from."""
    from connlab.experiments.config import Config, flag_spec

    where = f"connlab {name} {action}".strip()
    given = [a for a in options(parser) if not set(a.option_strings) & WHERE]
    if name in WHERE_ONLY:
        return [f"{where}: {a.option_strings[0]} is not a config field" for a in given], None
    # a hand-declared flag carries its own default; a generated one has none (SUPPRESS): the field's applies
    problems = [f"{where}: {a.option_strings[0]} is declared by hand (default {a.default!r})"
                for a in given if a.default is not argparse.SUPPRESS]
    dests, every = {a.dest for a in given}, {a.dest for a in options(parser)}
    classes = [c for c in vars(module).values() if isinstance(c, type) and issubclass(c, Config)
               and c is not Config and dests <= {f.name for f in c.flag_fields()} <= every]
    if not classes:
        return problems + [f"{where}: no config dataclass declares exactly its flags {sorted(dests)}"], None
    cls = classes[0]
    fields_ = {f.name: f for f in fields(cls)}
    for a in given:
        spec, default = flag_spec(cls, a.dest), fields_[a.dest].default
        if tuple(a.choices or ()) != tuple(spec["choices"] or ()):
            problems.append(f"{where}: {a.dest}'s choices differ from {cls.__name__}'s")
        if default is MISSING and not a.required:
            problems.append(f"{where}: {a.dest} has no default but is not required")
        elif default is not MISSING and spec["show_default"] and default is not None and not isinstance(default, bool):
            shown = ",".join(map(str, default)) if isinstance(default, tuple) else str(default)
            if f"(default {shown}" not in " ".join((a.help or "").split()):
                problems.append(f"{where}: {a.dest}'s help does not show {cls.__name__}'s default {shown}")
    return problems, cls


def test_every_flag_of_every_command_comes_from_one_config_dataclass():
    problems, checked = [], []
    for name, action, parser, module in command_parsers():
        found, cls = flag_problems(name, action, parser, module)
        problems += found
        checked.append((name, action, cls.__name__ if cls else None))
    assert not problems, "\n".join(problems)
    assert ("diffusion", "sample", "SampleCommand") in checked and ("diffusion", "eval", "EvalCommand") in checked
    assert ("demo", "", "DemoCommand") in checked and ("data", "", "DataSettings") in checked


def test_the_flag_check_catches_a_hand_declared_flag():
    import types

    from connlab.experiments.diffusion import SampleCommand

    parser = argparse.ArgumentParser()
    SampleCommand.add_flags(parser)
    module = types.SimpleNamespace(SampleCommand=SampleCommand)
    assert flag_problems("diffusion", "sample", parser, module) == ([], SampleCommand)
    parser.add_argument("--num-workers", type=int, default=2)  # a default declared outside any dataclass
    problems, _ = flag_problems("diffusion", "sample", parser, module)
    assert "connlab diffusion sample: --num-workers is declared by hand (default 2)" in problems
    assert any("no config dataclass declares exactly its flags" in p for p in problems)


def test_training_and_speed_defaults_are_declared_once():
    """The flags' defaults are RunSettings' and Speed's, which TrainConfig is made of; sampling uses Speed too."""
    from connlab.experiments.diffusion import EvalCommand, SampleCommand
    from connlab.runtime import speed
    from connlab.runtime.settings import RunSettings
    from connlab.runtime.speed import Speed
    from connlab.train import TrainConfig

    assert issubclass(TrainConfig, RunSettings) and issubclass(TrainConfig, Speed)
    sources = {f.name: RunSettings for f in fields(RunSettings)} | {f.name: Speed for f in fields(Speed)}
    for cls in (TrainingSettings, SampleCommand, EvalCommand):
        for f in fields(cls):
            if f.name in sources and f.name in {g.name for g in fields(TrainingSettings)}:
                assert f.default == getattr(sources[f.name], f.name) == getattr(TrainConfig(), f.name), (cls, f.name)
    for name in speed.HELP:  # one help text per switch: the trainer's and the sampler's flags say the same
        assert TrainingSettings.__dataclass_fields__[name].metadata["flag"]["help"] == speed.HELP[name]
        if name != "malloc_cache":
            assert SampleCommand.__dataclass_fields__[name].metadata["flag"]["help"] == speed.HELP[name]


@pytest.mark.parametrize("switch, expected", [
    # what the help says each ``auto`` does: (cpu train, cpu sample, cuda train, cuda sample)
    ("bf16", (False, False, True, True)),            # "auto: bf16 autocast on CUDA, fp32 elsewhere"
    ("compile", (False, False, False, False)),       # "(auto: off; ...)"
    ("channels_last", (True, True, True, True)),     # "(auto: on)"
    ("cuda_graph", (False, False, True, True)),      # "(auto: on CUDA, single process)"
    ("malloc_cache", (True, False, False, False)),   # "(glibc; auto: on CPU when training)"
])
def test_the_help_says_what_auto_resolves_to(switch, expected):
    import torch

    from connlab.runtime import speed
    from connlab.runtime.speed import Speed

    got = tuple(getattr(Speed().resolve(torch.device(d), purpose), switch)
                for d in ("cpu", "cuda") for purpose in ("train", "sample"))
    assert got == expected
    words = {"bf16": "auto: bf16 autocast on CUDA", "compile": "auto: off", "channels_last": "auto: on)",
             "cuda_graph": "auto: on CUDA", "malloc_cache": "auto: on CPU when training"}[switch]
    assert words in speed.HELP["precision" if switch == "bf16" else switch]
