"""Scores and sentences from an executed notebook: one test per autograder cell, as nbgrader counts them.

A test cell earns its points when it ran without an error; when its result is a number, that number
is the score (nbgrader's partial credit, capped at the points). Its sentence is what the check said:
the ``✓`` line it printed, the one sentence of a failed check (``CheckFailed``), the ``Your turn``
line of a place not written yet, or, when it could not run because a cell before it failed, that
cell's error. The notebook's notes say what happened to it: errors, timeouts, a dead kernel, cells
put back from the release.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from connlab.grade.kernel import CellRun
from connlab.grade.nbgrader import grade_id, is_test, meta, points

MISSING_NAME = ("NameError", "UnboundLocalError")


@dataclass
class Test:
    name: str
    score: float
    max_score: float
    status: str          # "passed" or "failed" (Gradescope's words)
    output: str          # one sentence


@dataclass
class Graded:
    tests: list[Test]
    notes: list[str] = field(default_factory=list)

    @property
    def score(self) -> float:
        return sum(t.score for t in self.tests)

    @property
    def max_score(self) -> float:
        return sum(t.max_score for t in self.tests)


def error_of(cell) -> dict | None:
    return next((o for o in cell.get("outputs", []) if o.get("output_type") == "error"), None)


def error_sentence(error: dict) -> str:
    """One line for an error output: the check's own sentence, the marked place's, or ``Name: message``."""
    ename, evalue = error.get("ename", "Error"), str(error.get("evalue", "")).strip()
    first = evalue.splitlines()[0] if evalue else ""
    if ename == "CheckFailed":
        return first
    if ename == "YourTurn":
        return f"Your turn: {first}"
    return f"{ename}: {first}" if first else ename


def passed_sentence(cell) -> str:
    text = "".join(o.get("text", "") for o in cell.get("outputs", [])
                   if o.get("output_type") == "stream" and o.get("name") == "stdout")
    ticks = [line[1:].strip() for line in text.splitlines() if line.startswith("✓")]
    return "; ".join(ticks) if ticks else "passed"


def partial_credit(cell, max_points: float) -> float | None:
    """nbgrader's partial credit: a test whose result (text/plain) is a number scores that number."""
    for output in cell.get("outputs", []):
        if output.get("output_type") == "execute_result":
            try:
                value = float(output.get("data", {}).get("text/plain", ""))
            except ValueError:
                return None
            return min(max(value, 0.0), max_points)
    return None


def _cause(cells, runs: dict[int, CellRun], index: int) -> str | None:
    """Why a name the test needs is missing: among the ungraded cells since the previous test, the
    first place left to the student (``Your turn``), else the first cell that failed."""
    start = max((i for i in range(index) if is_test(cells[i])), default=-1) + 1
    failures = []
    for i in range(start, index):
        run = runs.get(i)
        if run is None or is_test(cells[i]):
            continue
        error = error_of(cells[i]) if run.status == "error" else None
        if run.status == "timeout":
            failures.append(run.why)
        elif error is not None:
            failures.append(error_sentence(error))
    return next((f for f in failures if f.startswith("Your turn")), failures[0] if failures else None)


def score(nb, runs: dict[int, CellRun], restored_notes: list[str]) -> Graded:
    cells = nb.cells
    tests, notes = [], list(restored_notes)
    code_number = {i: n for n, i in enumerate((i for i, c in enumerate(cells) if c.cell_type == "code"), 1)}
    for i, cell in enumerate(cells):
        run = runs.get(i)
        if run is None:
            continue
        error = error_of(cell) if run.status == "error" else None
        if run.status in ("timeout", "died"):
            notes.append(run.why)
        elif error is not None and not is_test(cell):
            owner = "your code in " if meta(cell).get("solution") else ""
            notes.append(f"{owner}code cell {code_number[i]} raised {error_sentence(error)}")
        if not is_test(cell):
            continue
        top = points(cell)
        if run.status == "ok":
            credit = partial_credit(cell, top)
            got = top if credit is None else credit
            sentence = passed_sentence(cell) if got == top else f"partial credit: {got:g} of {top:g} points"
        else:
            got = 0.0
            if run.status == "not run":
                sentence = f"not run: {run.why}"
            elif run.status != "error":
                sentence = run.why
            else:
                sentence = error_sentence(error)
                cause = _cause(cells, runs, i) if error.get("ename") in MISSING_NAME else None
                if cause:   # the check's own sentence stands; a missing name is explained by the cell that failed
                    sentence = cause if cause.startswith("Your turn") else \
                        f"{sentence} (a cell before this check failed: {cause})"
        tests.append(Test(grade_id(cell), got, top, "passed" if run.status == "ok" and got == top else "failed",
                          sentence))
    if runs and all(r.status == "not run" for r in runs.values()):
        notes.append("no cell ran")
    stop = next((r.why for r in runs.values() if r.status == "not run"), None)
    if stop:
        skipped = sum(r.status == "not run" for r in runs.values())
        notes.append(f"{skipped} code cells after that were not run")
    return Graded(tests, notes)
