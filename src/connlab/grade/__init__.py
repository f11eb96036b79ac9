"""``connlab grade NOTEBOOK... --out DIR``: grade students' exercise notebooks without nbgrader.

Each submission is read (never written), matched to its released notebook (``--release``, default the
lab's ``notebooks/``: the one named in its file name, else the one sharing its cells' grade ids), its
locked and graded cells put back from the release by ``grade_id`` (``nbgrader``), and a copy executed
in its own kernel in a scratch folder under ``DIR/.scratch`` with the embedded data and the tiny size
(``kernel``). Every autograder cell is one test with its points and the check's sentence (``score``).
Written: ``DIR/STUDENT/NOTEBOOK/results.json`` (Gradescope's format) and ``graded.ipynb`` (the executed
copy, with outputs) per submission, ``DIR/grades.csv`` and ``DIR/overview.html`` for all (``outputs``).

Where a submission comes from: ``.../alice/01_autoencoder.ipynb`` is alice's, and so is
``alice_01_autoencoder.ipynb``. Bad input (a missing file, something that is not a notebook, an
unwritable ``--out``) stops before anything runs, with one line.
"""

from __future__ import annotations

import argparse
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import connlab
from connlab.errors import UserError
from connlab.experiments.config import Config, flag
from connlab.grade import kernel, nbgrader, outputs, score

SIZES = ("tiny", "small", "full")


@dataclass(frozen=True)
class GradeCommand(Config):
    """``connlab grade``'s settings (the notebooks and ``--out`` are its arguments)."""

    release: Path | None = flag(None, "the released notebooks with nbgrader metadata (default: the lab's "
                                      "notebooks/ folder)", type=Path)
    timeout: float = flag(120.0, "seconds per cell before it is stopped")
    size: str = flag("tiny", "CONNLAB_NB_SIZE for the notebooks", choices=SIZES)
    keep_scratch: bool = flag(False, "keep each submission's scratch folder")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("notebooks", nargs="+", type=Path, metavar="NOTEBOOK", help="the students' notebooks (.ipynb)")
    p.add_argument("--out", type=Path, required=True, help="the folder for results.json, grades.csv, overview.html")
    GradeCommand.add_flags(p)
    p.set_defaults(run=run)


def default_release() -> Path:
    return Path(connlab.__file__).resolve().parents[2] / "notebooks"


def _writable(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".connlab-grade-probe"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise UserError(f"--out {out}: cannot write there ({err.strerror or err})") from None


def _student(path: Path, notebook: str) -> str:
    rest = path.stem.replace(notebook, "").strip(" _-.")
    return rest or path.resolve().parent.name or "submission"


def _keys(plan: list[tuple[Path, object, nbgrader.Release]]) -> list[tuple[str, str]]:
    """(student, folder key) per submission; keys are unique and safe as folder names."""
    seen: dict[str, int] = {}
    found = []
    for path, _, release in plan:
        student = _student(path, release.name)
        key = re.sub(r"[^A-Za-z0-9._-]", "_", student) + "/" + release.name
        seen[key] = seen.get(key, 0) + 1
        found.append((student, key if seen[key] == 1 else f"{key}-{seen[key]}"))
    return found


def grade_one(path: Path, nb, release: nbgrader.Release, student: str, key: str, out: Path, timeout: float,
              size: str, keep_scratch: bool = False) -> outputs.Submission:
    # lazy: nbformat/nbclient/jupyter are test-only dependencies (grading)
    import nbformat

    ready, notes = nbgrader.restore(nb, release)
    scratch = out / ".scratch" / key.replace("/", "__")
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    start = time.monotonic()
    try:
        runs = kernel.run(ready, scratch, timeout, size)
    finally:
        if not keep_scratch:
            shutil.rmtree(scratch, ignore_errors=True)
    seconds = time.monotonic() - start
    sub = outputs.Submission(key, student, release.name, path, score.score(ready, runs, notes), seconds)
    outputs.write_results(out, sub)
    nbformat.write(ready, out / key / "graded.ipynb")
    return sub


def run(args: argparse.Namespace) -> int:
    cfg = GradeCommand.from_args(args)
    for name in ("release", "timeout", "size", "keep_scratch"):
        setattr(args, name, getattr(cfg, name))
    out = args.out
    if args.timeout <= 0:
        raise UserError(f"--timeout {args.timeout:g}: give a positive number of seconds per cell")
    releases = nbgrader.load_releases(args.release or default_release())
    plan = []
    for path in args.notebooks:   # every input checked before anything runs
        nb = nbgrader.read(path)
        plan.append((path, nb, nbgrader.match(path, nb, releases)))
    _writable(out)
    subs = []
    for (path, nb, release), (student, key) in zip(plan, _keys(plan)):
        sub = grade_one(path, nb, release, student, key, out, args.timeout, args.size, args.keep_scratch)
        subs.append(sub)
        print(f"{key}: {sub.graded.score:g} of {sub.graded.max_score:g} points ({sub.seconds:.0f} s)"
              + (f" — {sub.graded.notes[0]}" if sub.graded.notes else ""), flush=True)
    if not args.keep_scratch:
        shutil.rmtree(out / ".scratch", ignore_errors=True)
    outputs.write_csv(out, subs)
    page = outputs.write_overview(out, subs)
    print(f"grades: {out / 'grades.csv'}; overview: {page}")
    return 0
