"""Imports point down only: a module may import its own layer and the layers below it, never above.

    nn, data -> models -> diffusion -> runtime -> train -> eval -> experiments -> report, explore -> cli

The check reads every module of the package with ``ast`` (imports inside functions included, since
a function-level import is how an upward dependency hides) and maps each module to its layer by
its dotted name, the longest matching prefix winning.  A folder is one layer: the map names
folders and the modules at the package root (runs.py, metrics.py, ...), never a module inside a
folder, and no import is excused.
"""

from __future__ import annotations

import ast
from pathlib import Path

import connlab

PACKAGE = Path(connlab.__file__).parent

LAYERS = ["base", "models", "diffusion", "runtime", "train", "eval", "experiments", "report", "cli"]

LAYER_OF = {
    "connlab": "base",  # the package itself: __version__
    "connlab.errors": "base",
    "connlab.nn": "base",
    "connlab.data": "base",
    "connlab.models": "models",
    "connlab.diffusion": "diffusion",
    "connlab.runtime": "runtime",
    "connlab.train": "train",
    "connlab.checkpoint": "train",
    "connlab.runs": "train",
    "connlab.plots": "train",  # figures of a run folder; rank 0 writes (runtime.distributed)
    "connlab.metrics": "eval",
    "connlab.quality": "eval",
    "connlab.evidence": "eval",
    "connlab.measures": "eval",
    "connlab.sampling": "eval",  # loads diffusion run folders, scores samples (quality, measures)
    "connlab.experiments": "experiments",
    "connlab.exercises": "experiments",  # the notebooks' checks: a leaf beside the experiments, imported by nothing
    "connlab.report": "report",
    "connlab.explore": "report",
    "connlab.grade": "report",  # runs the exercise notebooks in kernels and writes their grades; imports no exercise
    "connlab.cli": "cli",
    "connlab.__main__": "cli",
    "connlab.demo": "cli",  # runs every experiment through the CLI, then the report and the explorer
}


def layer_of(module: str) -> str:
    """The layer of a dotted module name (longest mapped prefix); KeyError if none is mapped."""
    parts = module.split(".")
    for i in range(len(parts), 0, -1):
        name = ".".join(parts[:i])
        if name in LAYER_OF:
            return LAYER_OF[name]
    raise KeyError(f"{module} is mapped to no layer: add it to LAYER_OF")


def module_name(path: Path, root: Path = PACKAGE) -> str:
    rel = path.relative_to(root.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(module: str, source: str, is_package: bool = False) -> list[tuple[int, str]]:
    """(line, module) of every connlab import in ``source``, at any depth (functions included)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "connlab"]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                pkg = module.split(".") if is_package else module.split(".")[:-1]
                pkg = pkg[:len(pkg) - (node.level - 1)]
                base = ".".join(pkg + ([node.module] if node.module else []))
            if base.split(".")[0] != "connlab":
                continue
            for alias in node.names:  # `from connlab import plots` imports the module connlab.plots
                sub = f"{base}.{alias.name}"
                found.append((node.lineno, sub if _is_module(sub) else base))
    return found


def _is_module(name: str) -> bool:
    path = PACKAGE.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def upward_imports(module: str, source: str, is_package: bool = False) -> list[str]:
    """One line per import in ``source`` (the text of ``module``) that points to a higher layer."""
    own = LAYERS.index(layer_of(module))
    return [f"{module}:{line} imports {target} ({layer_of(target)} is above {layer_of(module)})"
            for line, target in imported_modules(module, source, is_package)
            if LAYERS.index(layer_of(target)) > own]


def package_modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_every_module_has_a_layer():
    unmapped = []
    for path in package_modules():
        try:
            layer_of(module_name(path))
        except KeyError as err:
            unmapped.append(str(err))
    assert not unmapped, "\n".join(unmapped)


def test_a_folder_is_one_layer():
    """No module inside a folder is mapped on its own (that would relabel it into another layer)."""
    inside = [name for name in LAYER_OF if name.count(".") > 1]
    assert not inside, f"modules mapped apart from their folder: {inside}"
    for name in LAYER_OF:  # every name is a real package or root module (no layer for a package that is not there)
        assert _is_module(name), f"{name} is mapped but does not exist"


def test_imports_point_down_only():
    upward = []
    for path in package_modules():
        upward += upward_imports(module_name(path), path.read_text(), path.name == "__init__.py")
    assert not upward, "imports that point up:\n" + "\n".join(upward)


def test_the_check_catches_a_planted_upward_import():
    # hidden in a function, as upward imports usually are
    planted = "import torch\n\ndef helper():\n    from connlab.experiments.autoencoder import run\n    return run\n"
    assert upward_imports("connlab.nn.gates", planted) == [
        "connlab.nn.gates:4 imports connlab.experiments.autoencoder (experiments is above base)"]
    assert upward_imports("connlab.models.autoencoder", "from connlab import train\n")  # module via `from pkg import`
    assert upward_imports("connlab.data.noise", "from ..runtime import distributed\n")  # relative import
    # the same imports pointing down are fine
    assert upward_imports("connlab.experiments.autoencoder", "from connlab.nn import gates\nfrom connlab import train\n") == []


def test_the_check_catches_an_upward_import_planted_in_a_real_module(tmp_path):
    path = PACKAGE / "data" / "noise.py"
    source = path.read_text() + "\n\ndef _planted():\n    from connlab.quality import sample_quality\n"
    assert upward_imports(module_name(path), source) != []
    assert upward_imports(module_name(path), path.read_text()) == []
    # the diffusion package may not load run folders (what diffusion/generate.py did before it moved)
    path = PACKAGE / "diffusion" / "samplers.py"
    source = path.read_text() + "\n\ndef _planted(run):\n    from connlab.runs import read_config\n"
    assert upward_imports(module_name(path), source) == [
        f"connlab.diffusion.samplers:{len(source.splitlines())} imports connlab.runs (train is above diffusion)"]
