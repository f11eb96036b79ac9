"""Graded notebooks for the grader's tests: the lab's notebooks with nbgrader's metadata, and submissions.

``with_nbgrader(nb)`` adds nbgrader's standard cell metadata (schema version 3) to one of the lab's
generated notebooks, the way nbgrader's create-assignment marks them: each code cell that calls a
``check_*`` is split at that call into the student's part (a solution cell where it holds a marked
place) and the check (an autograder test: ``grade``, ``locked``, ``points``, ``grade_id``). Where
the stored notebooks already carry nbgrader metadata they are used as they are.

``submission(name, edits)`` is the solution notebook with that metadata and the given source edits:
what a student hands in.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
CHECK = re.compile(r"^(check_\w+)\(", re.M)


def _nbgrader(cell, **fields):
    cell.metadata["nbgrader"] = {"schema_version": 3, "grade": False, "solution": False, "locked": False, **fields}
    return cell


def has_nbgrader(nb) -> bool:
    return any("nbgrader" in c.get("metadata", {}) for c in nb.cells)


def with_nbgrader(nb, points: dict[str, float] | None = None) -> nbformat.NotebookNode:
    if has_nbgrader(nb):
        return nb
    nb = copy.deepcopy(nb)
    cells = []
    for cell in nb.cells:
        cell.id = re.sub(r"-[es](\d+)$", r"-\1", cell.id)   # exercise and solution cells share ids, as in nbgrader
        found = CHECK.search(cell.source) if cell.cell_type == "code" else None
        if found is None:
            if cell.cell_type == "code" and "✎ Your turn" in cell.source:
                _nbgrader(cell, solution=True, grade_id=f"answer_{cell.id}")
            cells.append(cell)
            continue
        before, test = cell.source[:found.start()].rstrip("\n"), cell.source[found.start():]
        if before.strip():
            part = nbformat.v4.new_code_cell(before)
            part.id = f"{cell.id}-answer"
            if "✎ Your turn" in before:
                _nbgrader(part, solution=True, grade_id=f"answer_{found[1]}")
            cells.append(part)
        cell.source = test
        cell.id = f"{cell.id}-check"
        _nbgrader(cell, grade=True, locked=True, points=(points or {}).get(found[1], 1), grade_id=found[1])
        cells.append(cell)
    nb.cells = cells
    return nb


def release(folder: Path, names) -> Path:
    """The exercise notebooks ``names`` with nbgrader metadata, written to ``folder`` (the --release)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        nb = nbformat.read(ROOT / "notebooks" / f"{name}.ipynb", as_version=4)
        nbformat.write(with_nbgrader(nb), folder / f"{name}.ipynb")
    return folder


def submission(path: Path, name: str, edits=(), solved: bool = True, drop=()) -> Path:
    """A student's notebook at ``path``: the solutions (or the exercise, untouched) with nbgrader metadata,
    each (old, new) in ``edits`` replaced once in the cell that holds it, the cells whose grade id is
    in ``drop`` deleted."""
    source = ROOT / "notebooks" / ("solutions" if solved else "") / f"{name}.ipynb"
    nb = with_nbgrader(nbformat.read(source, as_version=4))
    for old, new in edits:
        cell = next((c for c in nb.cells if old in c.source), None)
        assert cell is not None, f"{name}: no cell holds {old!r}"
        cell.source = cell.source.replace(old, new, 1)
    nb.cells = [c for c in nb.cells if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") not in drop]
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path
