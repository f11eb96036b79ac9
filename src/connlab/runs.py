"""Run folders: ``runs/<experiment>-<timestamp>/`` with config.json, metrics, summary, weights, figures.

Layout (the report reads these only):
    config.json      the experiment's typed config (and the connlab version)
    summary.json     final numbers
    metrics.jsonl    one line per epoch (per variant folder when a run trains several models)
    model.safetensors, checkpoints/, *.png
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from connlab import __version__
from connlab.checkpoint import atomic_write_json
from connlab.errors import UserError


def default_out(experiment: str) -> Path:
    return Path("runs") / f"{experiment}-{time.strftime('%Y%m%d-%H%M%S')}"


def read_config(out: Path) -> dict:
    path = Path(out) / "config.json"
    if not Path(out).is_dir():
        raise UserError(f"{out}: no such run folder")
    if not path.is_file():
        raise UserError(f"{out}: not a connlab run folder (no config.json)")
    try:
        saved = json.loads(path.read_text())
        return saved if isinstance(saved, dict) else {}
    except json.JSONDecodeError as err:
        raise UserError(f"{path}: corrupt JSON ({err.msg} at line {err.lineno})") from None


@dataclass(frozen=True)
class SavedRun:
    """A run folder's config.json, read back: what kind of run it is and its config."""

    folder: Path
    experiment: str      # the command that made it ("diffusion", "ladder", ...)
    config: Any          # the experiment's config dataclass when asked for, else config.json's "config" object
    saved: dict          # the whole of config.json (connlab_version, distributed, ...)


def read_run(folder: Path, experiment: str | None = None, cls=None, flag: str = "") -> SavedRun:
    """The one reader of a run's config: what kind of run ``folder`` holds and its config (as ``cls``,
    unknown keys dropped, when given); a UserError when it is no run folder, or not an ``experiment``
    run when one is asked for. ``flag`` (e.g. "--ladder-run") starts the error message."""
    prefix = f"{flag} " if flag else ""
    saved = read_config(folder)
    kind = saved.get("experiment")
    if not isinstance(kind, str):
        raise UserError(f"{prefix}{folder}: not a connlab run folder (config.json names no experiment)")
    if experiment is not None and kind != experiment:
        raise UserError(f"{prefix}{folder}: a {kind!r} run, not a {experiment} run")
    raw = saved.get("config") or {}
    if not isinstance(raw, dict):
        raise UserError(f"{prefix}{Path(folder) / 'config.json'}: its \"config\" is not an object")
    return SavedRun(Path(folder), kind, config_from_json(cls, raw) if cls is not None else raw, saved)


def prepare_run(out: Path | None, experiment: str, config, resume: bool, given: dict | None = None):
    """Create (or, with ``resume``, reopen) a run folder; returns (folder, config).

    A resumed run uses the config saved in its folder, so it continues exactly the
    experiment it started; ``given`` (the flags given on the command line, field -> value) must
    agree with it, else a UserError names the ones that differ. A new run refuses a folder that
    already holds one.
    Under torchrun rank 0 creates the folder and the others learn its name from rank 0
    (a default name holds a timestamp); ``distributed`` records how the run is spread.
    """
    from connlab.runtime import distributed

    if resume:
        if out is None:
            raise UserError("--resume needs --out DIR, the run folder to continue")
        run = read_run(out, experiment, type(config))
        saved, config = run.saved, run.config
        differ = [k for k, v in (given or {}).items() if to_json(v) != to_json(getattr(config, k, None))]
        if differ:
            listed = ", ".join(f"--{k.replace('_', '-')} {to_json(given[k])} (saved: {to_json(getattr(config, k))})"
                               for k in differ)
            raise UserError(f"--resume continues {out} with its saved config.json; these flags differ from it: "
                            f"{listed} — drop them, or start a new run with another --out")
        spread = distributed.describe(getattr(config, "batch_size", None))
        if saved.get("distributed", spread) != spread:  # resumed on another number of processes
            atomic_write_json(Path(out) / "config.json", {**saved, "distributed": spread})
        return Path(out), config
    made, error = None, None
    distributed.barrier()  # every rank is done with the folder (a cleanup of an earlier try) before it is made
    if distributed.is_main():
        try:
            made = _create_run(out, experiment, config)
        except UserError as err:
            error = str(err)
    made, error = distributed.broadcast_object((made, error))
    if error is not None:
        raise UserError(error)
    return made, config


def _create_run(out: Path | None, experiment: str, config) -> Path:
    from connlab.runtime import distributed

    out = Path(out) if out is not None else default_out(experiment)
    if (out / "config.json").exists():
        raise UserError(f"{out} already holds a run; pass --resume to continue it or choose another --out")
    make_folder(out)
    try:
        spread = distributed.describe(getattr(config, "batch_size", None))
        atomic_write_json(out / "config.json", {"experiment": experiment, "connlab_version": __version__,
                                                "config": config_to_json(config), "distributed": spread})
    except OSError as err:
        raise UserError(f"--out {out}: cannot write config.json there ({err.strerror or err})") from None
    return out


def config_to_json(config) -> dict:
    """A config dataclass as config.json's ``"config"`` object (tuples become lists, paths strings)."""
    return {k: to_json(v) for k, v in asdict(config).items()}


def config_from_json(cls, saved: dict):
    """The ``cls`` config from config.json's ``"config"`` object: keys ``cls`` does not know are dropped
    (a run saved by another connlab version), missing ones take their defaults, lists become tuples."""
    names = {f.name for f in fields(cls)}
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in saved.items() if k in names})


def to_json(value):
    if isinstance(value, (tuple, list)):
        return [to_json(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def resumable(folder: Path, resume: bool) -> bool:
    """Whether a training run in ``folder`` continues from a checkpoint: only with ``--resume`` and when
    one was written. A run killed before its first checkpoint (a requeued job) starts from the beginning."""
    from connlab.checkpoint import list_checkpoints

    return bool(resume) and bool(list_checkpoints(Path(folder) / "checkpoints"))


def make_folder(path: Path, flag: str = "--out") -> Path:
    """``mkdir -p path``, or a UserError naming the flag when it cannot be made (``--out /proc/x``)."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"{flag} {path}: cannot create the folder ({err.strerror or err})") from None
    return path


def write_summary(out: Path, summary: dict) -> None:
    """Write ``summary.json`` (rank 0); under torchrun all ranks leave together, so it exists for all."""
    from connlab.runtime import distributed

    atomic_write_json(Path(out) / "summary.json", summary)
    distributed.barrier()
