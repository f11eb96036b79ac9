"""Build the exercise notebooks and their solutions from the sources in ``notebooks/src/``.

    python scripts/make_notebooks.py [--out DIR]

Each ``notebooks/src/0N_*.py`` is one notebook in jupytext's percent format (the format is described in
``notebooks/src/README.md``). This script writes, without outputs:

- ``DIR/solutions/0N_*.ipynb``: the source as it is, nbgrader's ``### BEGIN SOLUTION`` / ``### END SOLUTION``
  markers kept -- an instructor's nbgrader *source* notebook;
- ``DIR/0N_*.ipynb``: the same with every marked region replaced by the lab's ``raise YourTurn("...")``
  line -- the exercise, an nbgrader *release*.

Both carry nbgrader's cell metadata (schema 3): a cell with a marked region is a solution cell, a cell that
only calls ``check_*`` functions is a graded, locked cell worth one point per check. ``_install.py`` is
put in every notebook as its second cell. Regenerating gives byte-identical files (the tests check that the
stored ones match). Default DIR: ``notebooks/``.
"""

from __future__ import annotations

import argparse
import ast
import re
from pathlib import Path

import jupytext
import nbformat

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ROOT / "notebooks" / "src"
BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
TURN = re.compile(r"^(?P<indent>\s*)# ✎ Your turn: (?P<message>.+)$")
KERNEL = {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
          "language_info": {"name": "python"}}


class SourceError(ValueError):
    """A notebook source breaks the format (notebooks/src/README.md); the message names the line."""


def sources() -> dict[str, Path]:
    """The notebooks' names and source files, in order."""
    return {p.stem: p for p in sorted(SOURCES.glob("[0-9][0-9]_*.py"))}


def _regions(code: str, where: str) -> list[tuple[int, int, str, str]]:
    """The marked regions of a cell: (line of ``# ✎ Your turn``, line of END, indent, message)."""
    lines, found, start = code.split("\n"), [], None
    for i, line in enumerate(lines):
        if line.strip() == BEGIN:
            if start is not None:
                raise SourceError(f"{where}: nested {BEGIN}")
            turn = TURN.match(lines[i - 1]) if i > 0 else None
            if turn is None:
                raise SourceError(f"{where}: {BEGIN} must follow a '# ✎ Your turn: <what to write>' line")
            start = (i - 1, turn["indent"], turn["message"])
        elif line.strip() == END:
            if start is None:
                raise SourceError(f"{where}: {END} without a {BEGIN}")
            found.append((start[0], i, start[1], start[2]))
            start = None
    if start is not None:
        raise SourceError(f"{where}: a {BEGIN} is not closed")
    return found


def exercise_code(code: str, where: str = "cell") -> str:
    """The code of one cell with each marked region left to the student."""
    lines = code.split("\n")
    for first, last, indent, message in reversed(_regions(code, where)):
        lines[first:last + 1] = [f"{indent}# ✎ Your turn: replace the next line with your code",
                                 f"{indent}raise YourTurn({message!r})"]
    return "\n".join(lines)


def _checks(code: str) -> list[str]:
    """The ``check_*`` functions a check cell calls; [] if the cell does anything else."""
    try:
        body = ast.parse(code).body
    except SyntaxError:
        return []
    names = [s.value.func.id for s in body if isinstance(s, ast.Expr) and isinstance(s.value, ast.Call)
             and isinstance(s.value.func, ast.Name) and s.value.func.id.startswith("check_")]
    return names if body and len(names) == len(body) else []


def _answer_id(code: str, where: str, taken: set[str]) -> str:
    """A solution cell's grade_id: the cell's first function or class, else the first name its region sets."""
    first, last, *_ = _regions(code, where)[0]
    defined = re.search(r"^\s*(?:def|class)\s+(\w+)", code, re.M)
    assigned = re.search(r"^\s*(\w+)\s*=", "\n".join(code.split("\n")[first:last]), re.M)
    base = defined[1] if defined else assigned[1] if assigned else "answer"
    grade_id, k = base, 2
    while grade_id in taken:
        grade_id, k = f"{base}_{k}", k + 1
    return grade_id


def _nbgrader(cell: dict, grade_id: str, solution: bool, points: int = 0) -> None:
    meta = {"grade": points > 0, "grade_id": grade_id, "locked": not solution, "schema_version": 3,
            "solution": solution}
    if points:
        meta["points"] = points
    cell["metadata"] = {"nbgrader": meta}


def notebook(name: str, path: Path, solution: bool) -> nbformat.NotebookNode:
    """One notebook, the exercise or (``solution``) the instructor's source."""
    install = jupytext.read(SOURCES / "_install.py", fmt="py:percent").cells
    nb = jupytext.read(path, fmt="py:percent")
    cells = nb.cells[:1] + install + nb.cells[1:]
    if not cells or cells[0].cell_type != "markdown":
        raise SourceError(f"{path}: the first cell must be the title, a markdown cell")
    if solution:
        cells[0]["source"] = cells[0]["source"].replace("\n", " — solution\n", 1)
    taken: set[str] = set()
    for i, cell in enumerate(cells):
        cell["metadata"] = {}
        cell["id"] = f"{name}-{'s' if solution else 'e'}{i:02d}"  # stable ids: regenerating gives the same file
        if cell.cell_type != "code":
            continue
        where = f"{path.name}, cell {i}"
        checks = _checks(cell.source)
        if _regions(cell.source, where):
            grade_id = _answer_id(cell.source, where, taken)
            _nbgrader(cell, grade_id, solution=True)
            if not solution:
                cell["source"] = exercise_code(cell.source, where)
        elif checks:
            grade_id = "_".join(dict.fromkeys(checks))
            if grade_id in taken:
                raise SourceError(f"{where}: a second cell calls {grade_id}; one check cell per check")
            _nbgrader(cell, grade_id, solution=False, points=len(checks))
        else:
            continue
        taken.add(grade_id)
    out = nbformat.v4.new_notebook()
    out.metadata = KERNEL
    out.cells = cells
    return out


def marked_places(name: str) -> list[str]:
    """The messages of a notebook's marked regions, in order (the tests expect the first)."""
    nb = jupytext.read(sources()[name], fmt="py:percent")
    return [message for i, cell in enumerate(nb.cells) if cell.cell_type == "code"
            for *_, message in _regions(cell.source, f"{name}, cell {i}")]


def write_all(out: Path) -> list[Path]:
    written = []
    for folder, solution in ((out, False), (out / "solutions", True)):
        folder.mkdir(parents=True, exist_ok=True)
        for name, path in sources().items():
            nb = notebook(name, path, solution)
            nbformat.validate(nb)
            target = folder / f"{name}.ipynb"
            target.write_text(nbformat.writes(nb) + "\n", encoding="utf-8")
            written.append(target)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "notebooks")
    for path in write_all(parser.parse_args().out):
        print(path)


if __name__ == "__main__":
    main()
