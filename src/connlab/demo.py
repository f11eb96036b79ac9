"""``connlab demo`` — the whole lecture in one command: every experiment, then the report page.

The demo owns no training code: each part is one ``connlab`` command (``connlab.cli.main``)
with demo-size flags, writing its own run folder ``DIR/<experiment>/``; ``connlab.report``
then turns those folders into ``DIR/report.html``.

    DIR/demo.json      per part: the command, status, wall and CPU seconds; the environment
    DIR/<experiment>/  the experiments' own run folders (config.json, summary.json, *.png)
    DIR/report.html    one self-contained page
    DIR/explorer.html  the trained models, live in one offline page (``connlab explore``)

Sizes.  Each experiment's registry entry (``connlab.experiments.REGISTRY``) holds its demo
flags: the CPU size, for 2 CPU cores on the embedded 9,000 / 1,000 digits (≤ 15 minutes in all;
measured times in benchmarks/RESULTS.md and in each demo.json, wall and CPU seconds per part),
and the ``--full`` size, the experiments' full-size settings for one GPU and full MNIST.

Resume.  ``--resume --out DIR`` skips every part whose run folder already holds its result
(summary.json, or the part's own output file) and passes ``--resume`` to a part that started
but did not finish, so an interrupted demo continues where it stopped.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import torch

from connlab import __version__
from connlab.checkpoint import atomic_write_json
from connlab.cli import main
from connlab.data.datasets import check_source
from connlab.errors import UserError
from connlab.experiments import lecture_order
from connlab.experiments.config import Config, flag
from connlab.experiments.registry import COURSE_DEMO, REGISTRY
from connlab.explore import write_explorer
from connlab.explore.page import ExportFailed
from connlab.report.page import build_report
from connlab.runs import claim, default_out, make_folder, read_json_object
from connlab.runtime.settings import RunSettings
from connlab.train import pick_device


@dataclass(frozen=True)
class Part:
    name: str                  # "autoencoder", "diffusion sample"
    folder: str                # run folder, relative to the demo folder
    argv: tuple[str, ...]      # connlab.cli.main arguments without --out / --resume
    done_file: str = "summary.json"   # the part is finished when this file (a glob) exists in its folder
    owns_folder: bool = True   # False: writes into another part's folder (no --out, no --resume)


def plan(full: bool, dataset: str, data_dir: str | None, device: str, preset: str = "lab",
         only: set[str] | None = None) -> list[Part]:
    """The demo's parts in the lecture's order (``REGISTRY``'s demo steps), with their command lines.

    A step that owns its folder writes ``DIR/<experiment>/`` (or its own ``folder``); the others
    (diffusion sample/eval) get ``--run <experiment>``, completed to that folder in ``command_line``.
    ``preset="course"``: the course's protocols instead (``registry.COURSE_DEMO``); ``only``: the
    parts that will run, so that a missing preset refuses only a part that was asked for.
    """
    data = ("--dataset", dataset) + (("--data-dir", data_dir) if data_dir else ())
    parts = []
    steps = (course_steps(only) if preset == "course" else
             [(entry, step) for entry in lecture_order() for step in entry.demo])
    for entry, step in steps:
        command = (entry.name, step.action) if step.action else (entry.name,)
        flags = step.full if full else step.cpu
        name = step.name or " ".join(command)
        if step.owns_folder:
            extra = (data if step.takes_dataset else
                     ("--data-dir", data_dir) if step.takes_data_dir and data_dir else ())
            parts.append(Part(name, step.folder or entry.name, (*command, *flags, *extra, "--device", device),
                              step.done_file))
        else:
            parts.append(Part(name, entry.name, (*command, "--run", entry.name, *flags, "--device", device),
                              step.done_file, False))
    return parts


def course_steps(only: set[str] | None = None) -> list:
    """``registry.COURSE_DEMO`` as (entry, step); a command without a ``--preset course`` (its helper's branch
    not merged yet) is a UserError naming it, unless ``only`` leaves its part out."""
    steps, missing = [], []
    for command, step in COURSE_DEMO:
        entry = REGISTRY.get(command)
        presets = getattr(entry.config_class, "PRESETS", {}) if entry is not None and entry.config else {}
        if "course" in presets:
            steps.append((entry, step))
        elif only is None or step.name in only:
            missing.append(command)
    if missing:
        have = [s.name for c, s in COURSE_DEMO if c not in missing]
        raise UserError(f"connlab demo --preset course: {', '.join(missing)}: no --preset course yet (not "
                        f"merged); run the others with --only {','.join(have)}")
    return steps


@dataclass(frozen=True)
class DemoCommand(Config):
    """``connlab demo``'s flags (the parts' own flags are their registry entries' demo steps)."""

    out: Path | None = flag(None, "demo folder (default runs/demo-<timestamp>)", type=Path)
    full: bool = flag(False, "full-size settings for a GPU and the full MNIST")
    preset: str | None = flag(None, "lab: the lab's experiments (default); course: every course protocol at "
                                    "n = 5 seeds (autoencoder, depth, ladder, attention's toy head with --preset "
                                    "course)", type=str, choices=("lab", "course"))
    resume: bool = flag(False, "continue the demo in --out: skip finished parts, resume an interrupted one")
    device: str = flag(RunSettings.device, "auto (cuda, mps, cpu), cpu, cuda, cuda:N, mps", show_default=False)
    dataset: str | None = flag(None, "default mnist-embedded (the shipped 9,000 / 1,000 digits); with --full: mnist",
                               type=str)
    data_dir: Path | None = flag(None, "folder with the four MNIST IDX files", type=Path)
    only: str | None = flag(None, "run only these parts (names as in demo.json, e.g. gates,rnn); the report shows "
                                  "what exists", type=str, metavar="PART,...")
    report: bool = flag(True, "do not build report.html", negative="--no-report")
    explorer: bool = flag(True, "do not write explorer.html (the trained models in one offline page)",
                          negative="--no-explorer")


def add_arguments(p: argparse.ArgumentParser) -> None:
    DemoCommand.add_flags(p)
    p.set_defaults(run=lambda args: run(DemoCommand.from_args(args)))


def run(args: DemoCommand) -> int:
    out = Path(args.out) if args.out is not None else default_out("demo")
    record_path = out / "demo.json"
    options, previous = demo_options(args, out, record_path)
    pick_device(options["device"])  # every input a part would refuse, refused before the first part runs
    check_source(options["dataset"], options["data_dir"], verify=True)
    parts = chosen_parts(args, options)
    make_folder(out)
    claim(out)  # one demo per folder at a time; each part claims its own run folder too
    old = {r["name"]: r for r in previous.get("parts", []) if isinstance(r, dict) and "name" in r}
    record = {"experiment": "demo", "options": options, "started": previous.get("started", _now()),
              "environment": environment(options["device"]), "parts": [dict(old[p.name]) for p in parts
                                                                      if p.name in old]}
    _write_json(record_path, record)  # from now on --resume can continue this demo
    failed, interrupted = run_parts(parts, out, record, record_path, old)
    record["finished"] = None if interrupted else _now()
    record["total_seconds"] = round(sum(r.get("seconds") or 0 for r in record["parts"]), 1)
    record["total_cpu_seconds"] = round(sum(r.get("cpu_seconds") or 0 for r in record["parts"]), 1)
    record["load_average_at_end"] = _loadavg()
    _write_json(record_path, record)
    if interrupted:
        print(f"demo interrupted; continue with: connlab demo --resume --out {out}", file=sys.stderr)
        return 130
    explorer_failed = write_pages(args, out, parts, record)
    print(f"demo: {len(parts) - len(failed)}/{len(parts)} parts finished in {_clock(record['total_seconds'])} "
          f"({record['total_cpu_seconds']:.0f} s CPU); folder {out}", file=sys.stderr)
    if failed:
        print(f"demo: failed parts: {', '.join(failed)} (fix, then connlab demo --resume --out {out})",
              file=sys.stderr)
    if explorer_failed:
        print("demo: explorer.html lacks a part whose export failed (traceback above)", file=sys.stderr)
    return 1 if failed or explorer_failed else 0


def demo_options(args: DemoCommand, out: Path, record_path: Path) -> tuple[dict, dict]:
    """(options, the previous demo.json): the flags' options, or under --resume the started demo's; refuses a
    folder that is a file, one experiment's run folder, or a demo folder given without --resume."""
    options = {"full": args.full, "dataset": args.dataset or ("mnist" if args.full else "mnist-embedded"),
               "data_dir": str(args.data_dir) if args.data_dir else None, "device": args.device,
               "preset": args.preset or "lab"}
    previous: dict = {}
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: a file, not a folder")
    if (out / "config.json").exists():
        raise UserError(f"--out {out} is a run folder of one experiment, not a demo folder; choose another --out")
    if args.resume and not record_path.is_file():  # so `make demo` can always pass --resume
        print(f"--resume: {out} holds no demo yet; starting one", file=sys.stderr)
    elif args.resume:
        previous = _read_json(record_path)
        options = previous.get("options", options)  # continue the demo that was started
        if not isinstance(options, dict) or not {"full", "dataset", "data_dir", "device"} <= set(options):
            raise UserError(f"{record_path}: \"options\" is not the demo's options object; the file is damaged")
        if args.preset is not None and args.preset != options.get("preset", "lab"):
            raise UserError(f"--resume: {out} holds a demo of --preset {options.get('preset', 'lab')}, "
                            f"not {args.preset}")
    elif record_path.exists() or any((out / p.folder / "config.json").exists()
                                     for p in plan(False, "", None, "auto")):
        raise UserError(f"{out} already holds a demo; pass --resume to continue it or choose another --out")
    return options, previous


def chosen_parts(args: DemoCommand, options: dict) -> list[Part]:
    """The plan's parts, or those ``--only`` names (a name the plan does not hold is a UserError)."""
    only = {w.strip() for w in args.only.split(",") if w.strip()} if args.only else None
    parts = plan(options["full"], options["dataset"], options["data_dir"], options["device"],
                 options.get("preset", "lab"), only)
    if args.only is None:
        return parts
    wanted = [w.strip() for w in args.only.split(",") if w.strip()]
    if not wanted:
        raise UserError(f"--only {args.only!r} names no part; parts: {', '.join(p.name for p in parts)}")
    unknown = [w for w in wanted if w not in {p.name for p in parts}]
    if unknown:
        raise UserError(f"--only: unknown part {unknown[0]!r}; parts: {', '.join(p.name for p in parts)}")
    return [p for p in parts if p.name in wanted]


def run_parts(parts: list[Part], out: Path, record: dict, record_path: Path, old: dict) -> tuple[list[str], bool]:
    """Run each part not done yet, storing its entry in ``record`` (and demo.json) after it:
    (the failed parts' names, whether one was interrupted)."""
    t_demo = time.perf_counter()
    failed: list[str] = []
    for i, part in enumerate(parts, start=1):
        folder = out / part.folder
        label = f"[demo {i}/{len(parts)} | {_clock(time.perf_counter() - t_demo)} elapsed]"
        if _done(part, folder):
            print(f"{label} {part.name}: already finished, skipped", file=sys.stderr)
            _store(record, {**old.get(part.name, {"name": part.name, "folder": part.folder}), "status": "done"})
            continue
        if not part.owns_folder and not (folder / "summary.json").is_file():
            print(f"{label} {part.name}: skipped, the diffusion training did not finish", file=sys.stderr)
            _store(record, {"name": part.name, "folder": part.folder, "status": "skipped", "rc": None})
            failed.append(part.name)
            continue
        argv = command_line(part, out)
        print(f"{label} {part.name}: connlab {' '.join(argv)}", file=sys.stderr, flush=True)
        rc, wall, cpu = run_part(argv)
        entry = {"name": part.name, "folder": part.folder, "command": "connlab " + " ".join(argv),
                 "status": "done" if rc == 0 else ("interrupted" if rc == 130 else "failed"), "rc": rc,
                 "seconds": round(wall, 1), "cpu_seconds": round(cpu, 1)}
        _store(record, entry)
        record["elapsed_seconds"] = round(time.perf_counter() - t_demo, 1)
        _write_json(record_path, record)
        print(f"[demo {i}/{len(parts)}] {part.name}: {entry['status']} in {wall:.0f} s "
              f"({cpu:.0f} s CPU)", file=sys.stderr, flush=True)
        if rc == 130:
            return failed, True
        if rc != 0:
            failed.append(part.name)
    return failed, False


def write_pages(args: DemoCommand, out: Path, parts: list[Part], record: dict) -> bool:
    """explorer.html and report.html, as the flags ask; True when a part's export failed (a bug: its
    traceback is printed, the report is still built)."""
    explorer_failed = False
    if args.explorer:
        t0 = time.perf_counter()
        try:  # the trained models, live in one offline page beside the report
            page = write_explorer(out, out / "explorer.html")
            print(f"explorer: {page} ({time.perf_counter() - t0:.0f} s)")
        except UserError as err:  # onnx / onnxruntime-web missing, or no part it can show
            print(f"demo: explorer.html not written: {err}", file=sys.stderr)
        except ExportFailed:  # a bug in one part's export: its traceback, the report still built, exit 1
            traceback.print_exc()
            explorer_failed = True
    if args.report:
        folders = [out / f for f in dict.fromkeys(p.folder for p in parts) if (out / f / "config.json").is_file()]
        page = build_report(folders, out / "report.html", demo=record)
        print(f"report: {page}")
    return explorer_failed


def command_line(part: Part, out: Path) -> list[str]:
    """The part's ``connlab`` arguments for the demo folder ``out``."""
    folder = out / part.folder
    argv = [str(folder) if a == part.folder and prev == "--run" else a
            for prev, a in zip(("",) + part.argv, part.argv)]
    if "--ladder-run" in argv:  # the side-by-side page needs the ladder part; without it, sample alone
        k = argv.index("--ladder-run")
        ladder = out / argv[k + 1]
        argv[k:k + 2] = ["--ladder-run", str(ladder)] if (ladder / "summary.json").is_file() else []
    if not part.owns_folder:
        return argv
    argv += ["--out", str(folder)]
    if (folder / "config.json").is_file():
        if any(folder.rglob("checkpoints")):
            argv.append("--resume")
        else:  # it stopped before its first checkpoint: nothing to keep, start it again
            shutil.rmtree(folder)
    return argv


def run_part(argv: list[str]) -> tuple[int, float, float]:
    """Run one ``connlab`` command in this process: (exit code, wall seconds, CPU seconds)."""
    threads = torch.get_num_threads()  # a part may change it (diffusion runs one thread on CPU)
    t0, c0 = time.perf_counter(), _cpu_seconds()
    try:
        rc = main(argv)
    except Exception:  # a bug in one experiment must not cost the others
        traceback.print_exc()
        rc = 1
    finally:
        torch.set_num_threads(threads)
    return rc, time.perf_counter() - t0, _cpu_seconds() - c0


def _done(part: Part, folder: Path) -> bool:
    return any(folder.glob(part.done_file))


def _store(record: dict, entry: dict) -> None:
    parts = record["parts"]
    for k, r in enumerate(parts):
        if r["name"] == entry["name"]:
            parts[k] = entry
            return
    parts.append(entry)


def environment(device: str) -> dict:
    try:
        resolved = str(pick_device(device))
    except UserError:  # a device this machine lacks: each part reports it (exit 2); the record keeps the name
        resolved = device
    return {"connlab": __version__, "python": platform.python_version(), "torch": torch.__version__,
            "platform": platform.platform(), "machine": platform.machine(), "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "device": resolved,
            "cuda_device": torch.cuda.get_device_name(0) if resolved.startswith("cuda") and torch.cuda.is_available()
            else None,
            "load_average_at_start": _loadavg()}


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def _clock(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    return f"{m:d}:{s:02d}"


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def _read_json(path: Path) -> dict:
    data = read_json_object(path)
    if not isinstance(data.get("parts", []), list):
        raise UserError(f"{path}: \"parts\" is not a list; the file is damaged")
    return data


def _write_json(path: Path, data: dict) -> None:
    atomic_write_json(path, data)
