"""nbgrader's cell metadata (schema version 3) and what autograding does with it before a notebook runs.

A cell's ``metadata.nbgrader`` holds ``grade_id`` (unique in the notebook), ``solution`` (the student
writes here), ``grade`` with ``points`` (a graded cell), ``locked`` (read-only). A code cell with
``grade: true`` and no ``solution`` is an autograder test: its points are earned when it runs without
an error (or, nbgrader's partial credit, the number it outputs). As nbgrader's autograde does, every
locked or graded cell is put back from the released notebook by its ``grade_id``, so a student cannot
edit a check; a graded cell the submission lacks is put back too, after the cell that precedes it in
the release, and said so.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import nbformat

from connlab.errors import UserError


def meta(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {}) or {}


def grade_id(cell) -> str | None:
    return meta(cell).get("grade_id")


def is_test(cell) -> bool:
    """An autograder test: a graded code cell the student does not write in."""
    m = meta(cell)
    return cell.cell_type == "code" and bool(m.get("grade")) and not m.get("solution")


def is_restored(cell) -> bool:
    """A cell autograde puts back from the release: locked, or an autograder test."""
    return bool(meta(cell).get("locked")) or is_test(cell)


def points(cell) -> float:
    return float(meta(cell).get("points", 0) or 0)


def read(path: Path) -> nbformat.NotebookNode:
    """A notebook from ``path``; a missing file or anything that is not a notebook is one line."""
    if not path.is_file():
        raise UserError(f"{path}: no such notebook")
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception as err:  # JSON, schema, encoding: all say the same to the user
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(f"{path}: not a Jupyter notebook ({first[:160]})") from None
    if not isinstance(nb.get("cells"), list):
        raise UserError(f"{path}: not a Jupyter notebook (no cells)")
    return nb


@dataclass(frozen=True)
class Release:
    """One released notebook: its name (the file's stem), cells and autograder tests in order."""

    name: str
    path: Path
    nb: nbformat.NotebookNode

    @property
    def tests(self) -> list:
        return [c for c in self.nb.cells if is_test(c)]

    @property
    def max_score(self) -> float:
        return sum(points(c) for c in self.tests)


def load_releases(folder: Path) -> dict[str, Release]:
    """Every notebook in ``folder`` with at least one autograder test, by name."""
    if not folder.is_dir():
        raise UserError(f"--release {folder}: no such folder")
    found = {}
    for path in sorted(folder.glob("*.ipynb")):
        nb = read(path)
        if any(is_test(c) for c in nb.cells):
            found[path.stem] = Release(path.stem, path, nb)
    if not found:
        raise UserError(f"--release {folder}: no notebook there has graded cells (nbgrader metadata: "
                        "grade: true with points and a grade_id)")
    return found


def match(path: Path, nb, releases: dict[str, Release]) -> Release:
    """The release a submission answers: the one named in its file name, else the one sharing most grade ids."""
    named = [r for name, r in releases.items() if name in path.stem]
    if named:
        return max(named, key=lambda r: len(r.name))
    ids = {grade_id(c) for c in nb.cells} - {None}
    overlap = {name: len(ids & {grade_id(c) for c in r.nb.cells}) for name, r in releases.items()}
    best = max(overlap, key=overlap.get)
    if overlap[best] == 0:
        raise UserError(f"{path}: matches none of the released notebooks ({', '.join(releases)}) by name or "
                        "by its cells' grade ids")
    return releases[best]


def restore(nb, release: Release) -> tuple[nbformat.NotebookNode, list[str]]:
    """A copy of the submission with every locked and graded cell taken from the release; notes on what was put back.

    Cells are matched by ``grade_id``. A test cell missing from the submission is inserted after the
    nearest earlier release cell the submission has (by ``grade_id``), or at the end.
    """
    nb = copy.deepcopy(nb)
    notes = []
    by_id = {grade_id(c): c for c in release.nb.cells if grade_id(c)}
    for cell in nb.cells:
        source = by_id.get(grade_id(cell))
        if source is not None and is_restored(source):
            cell.clear()
            cell.update(copy.deepcopy(source))
            if cell.cell_type == "code":
                cell["outputs"], cell["execution_count"] = [], None
    have = {grade_id(c) for c in nb.cells}
    for i, source in enumerate(release.nb.cells):
        gid = grade_id(source)
        if not is_test(source) or gid in have:
            continue
        anchors = [grade_id(c) for c in release.nb.cells[:i] if grade_id(c) in have]
        at = len(nb.cells)
        if anchors:
            at = next(j for j, c in enumerate(nb.cells) if grade_id(c) == anchors[-1]) + 1
        cell = copy.deepcopy(source)
        cell["outputs"], cell["execution_count"] = [], None
        nb.cells.insert(at, cell)
        have.add(gid)
        notes.append(f"the graded cell {gid} was missing from the submission; it was run from the released notebook")
    return nb, notes
