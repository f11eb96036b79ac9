"""The exercise notebooks and their solutions, as a student and an instructor use them.

- the stored notebooks are what ``scripts/make_notebooks.py`` writes (exercises and solutions from one
  source), without outputs;
- every solution notebook runs to the end at the tiny size without an error;
- every exercise notebook runs up to its first marked place and stops there with the one-line
  "your turn" message of that place, not with some other error.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ("01_autoencoder", "02_incremental_denoising", "03_diffusion", "04_attention")


def generator_module():
    spec = importlib.util.spec_from_file_location("make_notebooks", ROOT / "scripts" / "make_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_stored_notebooks_are_the_generators_without_outputs(tmp_path):
    import nbformat

    subprocess.run([sys.executable, str(ROOT / "scripts" / "make_notebooks.py"), "--out", str(tmp_path)], check=True,
                   capture_output=True)
    assert set(generator_module().NOTEBOOKS) == set(NOTEBOOKS)
    for folder in ("", "solutions"):
        for name in NOTEBOOKS:
            stored = (ROOT / "notebooks" / folder / f"{name}.ipynb").read_text()
            assert stored == (tmp_path / folder / f"{name}.ipynb").read_text(), f"{folder}/{name}: rerun make_notebooks.py"
            nb = nbformat.reads(stored, as_version=4)
            nbformat.validate(nb)
            for cell in nb.cells:
                if cell.cell_type == "code":
                    assert cell.outputs == [] and cell.execution_count is None


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_exercise_and_solution_differ_only_at_the_marked_places(name):
    import nbformat

    places = generator_module().marked_places(name)
    assert places, f"{name} has nothing for the student to write"
    exercise, solution = ("\n".join(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code")
                          for path in (ROOT / "notebooks" / f"{name}.ipynb",
                                       ROOT / "notebooks" / "solutions" / f"{name}.ipynb"))
    assert [line.strip() for line in exercise.splitlines() if "raise YourTurn(" in line] == \
        [f"raise YourTurn({message!r})" for message in places]
    assert "raise YourTurn(" not in solution
    for message in places:
        assert f"# ✎ Your turn: {message}" in solution


def _client(nb, tmp_path, monkeypatch):
    from nbclient import NotebookClient

    monkeypatch.setenv("CONNLAB_NB_SIZE", "tiny")
    monkeypatch.setenv("CONNLAB_NB_OUT", str(tmp_path / "runs"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    return NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_solution_notebook_runs_at_a_tiny_size(name, tmp_path, monkeypatch):
    import nbformat

    nb = nbformat.read(ROOT / "notebooks" / "solutions" / f"{name}.ipynb", as_version=4)
    _client(nb, tmp_path, monkeypatch).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert [o for o in outputs if o.output_type == "error"] == []
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert text.count("✓ ") == {"01_autoencoder": 2, "02_incremental_denoising": 2, "03_diffusion": 2,
                                "04_attention": 1}[name], text   # every check ran and passed
    assert any("image/png" in o.get("data", {}) for o in outputs)   # and the pictures are shown


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_exercise_notebook_stops_at_its_first_marked_place(name, tmp_path, monkeypatch):
    import nbformat
    from nbclient.exceptions import CellExecutionError

    first = generator_module().marked_places(name)[0]
    nb = nbformat.read(ROOT / "notebooks" / f"{name}.ipynb", as_version=4)
    with pytest.raises(CellExecutionError):
        _client(nb, tmp_path, monkeypatch).execute()
    code = [c for c in nb.cells if c.cell_type == "code"]
    ran = [c for c in code if c.execution_count is not None]
    errors = [(i, o) for i, c in enumerate(ran) for o in c.outputs if o.output_type == "error"]
    assert len(errors) == 1 and errors[0][0] == len(ran) - 1            # only the last cell run failed ...
    error = errors[0][1]
    assert (error.ename, error.evalue) == ("YourTurn", first)           # ... with the first place's message
    assert error.traceback == [f"Your turn: {first}"]                   # on one line, no stack of frames
    assert f"raise YourTurn({first!r})" in ran[-1].source
