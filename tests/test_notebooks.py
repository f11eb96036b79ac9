"""The exercise notebooks and their solutions, as a student, an instructor and their tools use them.

- the stored notebooks are what ``scripts/make_notebooks.py`` builds from ``notebooks/src/`` (jupytext's
  percent format), without outputs; exercise and solution differ only at the marked regions;
- the nbgrader metadata is what nbgrader accepts (its own validator and its ClearSolutions step, when
  nbgrader is installed: the ``[grade]`` extra);
- every solution source runs as a plain Python module at the tiny size, every check passing;
- every exercise notebook runs in a kernel up to its first marked place and stops there with the one-line
  "your turn" message of that place, not with some other error.
"""

from __future__ import annotations

import importlib.util
import runpy
from pathlib import Path

import pytest

from connlab.experiments import REGISTRY

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = tuple(sorted(e.notebook for e in REGISTRY.values() if e.notebook))   # the registry's list


def builder():
    spec = importlib.util.spec_from_file_location("make_notebooks", ROOT / "scripts" / "make_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _read(path):
    import nbformat

    return nbformat.read(path, as_version=4)


def test_stored_notebooks_are_what_the_sources_build(tmp_path):
    import nbformat

    build = builder()
    assert tuple(build.sources()) == NOTEBOOKS
    build.write_all(tmp_path)
    for folder in ("", "solutions"):
        for name in NOTEBOOKS:
            stored = (ROOT / "notebooks" / folder / f"{name}.ipynb").read_text()
            assert stored == (tmp_path / folder / f"{name}.ipynb").read_text(), \
                f"{folder}/{name}: rerun python scripts/make_notebooks.py"
            nb = nbformat.reads(stored, as_version=4)
            nbformat.validate(nb)
            for cell in nb.cells:
                if cell.cell_type == "code":
                    assert cell.outputs == [] and cell.execution_count is None


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_exercise_and_solution_differ_only_at_the_marked_places(name):
    build = builder()
    places = build.marked_places(name)
    assert places, f"{name} has nothing for the student to write"
    exercise, solution = (_read(ROOT / "notebooks" / folder / f"{name}.ipynb") for folder in ("", "solutions"))
    assert len(exercise.cells) == len(solution.cells)
    raised = []
    for e, s in zip(exercise.cells, solution.cells):
        assert e.metadata == s.metadata
        if e.cell_type == "code":
            assert e.source == build.exercise_code(s.source)
            raised += [line.strip() for line in e.source.splitlines() if "raise YourTurn(" in line]
            assert build.BEGIN not in e.source and build.END not in e.source
    assert raised == [f"raise YourTurn({message!r})" for message in places]
    code = "\n".join(c.source for c in solution.cells if c.cell_type == "code")
    assert "raise YourTurn(" not in code
    for message in places:
        assert f"# ✎ Your turn: {message}\n" in code


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_each_marked_place_is_a_solution_cell_and_each_check_a_graded_locked_cell(name):
    exercise = _read(ROOT / "notebooks" / f"{name}.ipynb")
    graded = [c for c in exercise.cells if c.metadata.get("nbgrader", {}).get("grade")]
    answers = [c for c in exercise.cells if c.metadata.get("nbgrader", {}).get("solution")]
    assert graded and answers
    for cell in graded:
        meta = cell.metadata["nbgrader"]
        assert meta["locked"] and not meta["solution"] and meta["points"] >= 1 and meta["schema_version"] == 3
        assert all(line.startswith("check_") for line in cell.source.splitlines()), cell.source
        assert meta["grade_id"] == cell.source.split("(")[0]
    for cell in answers:
        assert "raise YourTurn(" in cell.source and not cell.metadata["nbgrader"]["locked"]
    plain = [c for c in exercise.cells if c.cell_type == "code" and "nbgrader" not in c.metadata]
    for cell in plain:  # no unmarked place to write in, no check the grader would miss
        assert "raise YourTurn(" not in cell.source
        assert not any(line.startswith("check_") for line in cell.source.splitlines()), cell.source


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_nbgrader_accepts_the_metadata(name):
    pytest.importorskip("nbgrader", reason="nbgrader is the [grade] extra: pip install -e '.[grade]'")
    from nbgrader.nbgraderformat import MetadataValidator
    from nbgrader.preprocessors import ClearSolutions

    solution, exercise = (_read(ROOT / "notebooks" / folder / f"{name}.ipynb") for folder in ("solutions", ""))
    for nb in (solution, exercise):
        MetadataValidator().validate_nb(nb)
    released, _ = ClearSolutions().preprocess(solution, {})  # what `nbgrader generate_assignment` does to our source
    for mine, theirs in zip(exercise.cells[1:], released.cells[1:]):  # cell 0: the title, "— solution" added
        if mine.metadata.get("nbgrader", {}).get("solution"):
            assert "raise NotImplementedError()" in theirs.source and "BEGIN SOLUTION" not in theirs.source
        else:
            assert mine.source == theirs.source


def test_the_format_names_a_broken_marker():
    build = builder()
    with pytest.raises(build.SourceError, match="must follow a '# ✎ Your turn"):
        build.exercise_code("x = 1\n### BEGIN SOLUTION\ny = 2\n### END SOLUTION")
    with pytest.raises(build.SourceError, match="is not closed"):
        build.exercise_code("# ✎ Your turn: y\n### BEGIN SOLUTION\ny = 2")
    with pytest.raises(build.SourceError, match="without a"):
        build.exercise_code("y = 2\n### END SOLUTION")
    assert build.exercise_code("def f():\n    # ✎ Your turn: return 2\n    ### BEGIN SOLUTION\n    return 2\n"
                               "    ### END SOLUTION") == \
        "def f():\n    # ✎ Your turn: replace the next line with your code\n    raise YourTurn('return 2')"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_solution_source_runs_as_a_module_at_the_tiny_size(name, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CONNLAB_NB_SIZE", "tiny")
    monkeypatch.setenv("CONNLAB_NB_OUT", str(tmp_path / "runs"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.chdir(tmp_path)
    source = ROOT / "notebooks" / "src" / f"{name}.py"
    runpy.run_path(str(source), run_name="__main__")
    text = capsys.readouterr().out
    checks = sum(len(c.source.splitlines()) for c in _read(ROOT / "notebooks" / f"{name}.ipynb").cells
                 if c.metadata.get("nbgrader", {}).get("grade"))
    assert text.count("✓ ") == checks, text  # every check ran and passed
    assert text.count("figure: ") == source.read_text().count("show(OUT")  # and every picture was drawn


def _client(nb, tmp_path, monkeypatch):
    from nbclient import NotebookClient

    monkeypatch.setenv("CONNLAB_NB_SIZE", "tiny")
    monkeypatch.setenv("CONNLAB_NB_OUT", str(tmp_path / "runs"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    return NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_exercise_notebook_stops_at_its_first_marked_place(name, tmp_path, monkeypatch):
    from nbclient.exceptions import CellExecutionError

    first = builder().marked_places(name)[0]
    nb = _read(ROOT / "notebooks" / f"{name}.ipynb")
    with pytest.raises(CellExecutionError):
        _client(nb, tmp_path, monkeypatch).execute()
    code = [c for c in nb.cells if c.cell_type == "code"]
    ran = [c for c in code if c.execution_count is not None]
    errors = [(i, o) for i, c in enumerate(ran) for o in c.outputs if o.output_type == "error"]
    assert len(errors) == 1 and errors[0][0] == len(ran) - 1            # only the last cell run failed ...
    error = errors[0][1]
    assert (error.ename, error.evalue) == ("YourTurn", first)           # ... with the first place's message
    assert error.traceback == [f"Your turn: {first}"]                   # on one line, no stack of frames
    # raised where it is written, or from the check cell that calls the function written there
    assert f"raise YourTurn({first!r})" in ran[-1].source or \
        (f"raise YourTurn({first!r})" in ran[-2].source and ran[-1].metadata["nbgrader"]["grade"])
