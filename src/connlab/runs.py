"""Run folders: ``runs/<experiment>-<timestamp>/`` with config.json, metrics, summary, weights, figures.

Layout (the report reads these only):
    config.json      the experiment's typed config (and the connlab version)
    summary.json     final numbers
    metrics.jsonl    one line per epoch (per variant folder when a run trains several models)
    model.safetensors, checkpoints/, *.png
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from connlab import __version__
from connlab.checkpoint import atomic_write_json, list_checkpoints
from connlab.data import course
from connlab.data.datasets import DATASETS, check_source
from connlab.errors import UserError
from connlab.runtime import distributed
from connlab.train.config import pick_device


def default_out(experiment: str) -> Path:
    return Path("runs") / f"{experiment}-{time.strftime('%Y%m%d-%H%M%S')}"


def read_json_object(path: Path, missing: dict | None = None) -> dict:
    """The JSON object in ``path`` (``missing`` when there is no such file and ``missing`` is given), or
    one ``UserError`` naming the file and what is wrong: unreadable, corrupt JSON, not an object."""
    path = Path(path)
    if missing is not None and not path.exists():
        return missing
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise UserError(f"{path}: corrupt JSON ({err.msg} at line {err.lineno}, column {err.colno})") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: corrupt JSON (not UTF-8 text)") from None
    except OSError as err:
        raise UserError(f"{path}: cannot read it ({err.strerror or err})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: not a JSON object (a {type(data).__name__}); the file is damaged")
    return data


def read_config(out: Path) -> dict:
    """config.json of run folder ``out``: an object whose ``"config"`` (if any) is an object too."""
    path = Path(out) / "config.json"
    if not Path(out).exists():
        raise UserError(f"{out}: no such run folder")
    if not Path(out).is_dir():
        raise UserError(f"{out}: a file, not a run folder")
    if not path.is_file():
        raise UserError(f"{out}: not a connlab run folder (no config.json)")
    saved = read_json_object(path)
    if not isinstance(saved.get("config", {}), dict):
        raise UserError(f"{path}: \"config\" is not an object; the file is damaged")
    return saved


# --- one process per run folder ---------------------------------------------------------------------

LOCK = ".connlab-lock"
_held: dict[str, tuple[int, Path]] = {}   # real path of a claimed folder -> (the open lock file, its path)


def claim(folder: Path, flag: str = "--out") -> None:
    """Hold ``folder`` for this process until ``release`` (or its exit): an exclusive ``flock`` on
    ``folder/.connlab-lock``, which holds the owner's pid and is removed on release. A second process (a
    new run or a ``--resume`` of the same folder) gets one ``UserError`` naming the folder and that pid.
    Re-entrant in one process (the demo runs its parts in-process). The lock file is opened without
    following a link."""
    # lazy: fcntl exists on Unix only
    import fcntl

    folder = Path(folder)
    key = os.path.realpath(folder)
    if key in _held:
        return
    path = folder / LOCK
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666)
        except OSError as err:
            raise UserError(f"{flag} {folder}: cannot use the folder ({err.strerror or err})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise UserError(f"{folder} is in use by another connlab process (pid {holder}); wait for it to end, "
                            f"or choose another {flag}") from None
        if _same_file(fd, path):
            break
        os.close(fd)   # the holder released (and removed) the file between our open and our lock: try again
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    _held[key] = (fd, path)


def _same_file(fd: int, path: Path) -> bool:
    try:
        now = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (now.st_dev, now.st_ino) == (mine.st_dev, mine.st_ino)


def held() -> list[str]:
    """The folders this process holds, oldest claim first."""
    return list(_held)


def release(keep=()) -> None:
    """Let go of the folders this process claimed, except those in ``keep`` (``held()`` taken earlier): the
    lock file is removed while still locked, so a finished run folder holds only the run's files."""
    for key in [k for k in _held if k not in keep]:
        fd, path = _held.pop(key)
        try:
            if _same_file(fd, path):
                os.unlink(path)
        except OSError:
            pass   # a read-only or vanished folder: the lock file stays, harmless (the lock dies with the fd)
        os.close(fd)


def check_inputs(config) -> None:
    """Every input of a run that can be checked without doing the work, before its folder gets a file:
    the device (``cuda`` without CUDA, ``cuda:99``), the data set's name and its ``--data-dir``."""
    if getattr(config, "device", None) is not None:
        pick_device(config.device)
    dataset = getattr(config, "dataset", None)
    # a command whose --preset course reads the course's digits (--dataset course) names them among its choices
    if getattr(config, "PRESETS", {}).get("course", {}).get("dataset") == course.DATASET and dataset not in (
            *DATASETS, course.DATASET):
        raise UserError(f"unknown dataset {dataset!r}; choose one of {', '.join((*DATASETS, course.DATASET))}")
    if dataset is not None:
        # the course's digits are MNIST's: a --data-dir beside them holds the full MNIST (its test digits)
        check_source("mnist" if dataset == course.DATASET else dataset, getattr(config, "data_dir", None),
                     verify=True)


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
    config = config_from_json(cls, raw, Path(folder) / "config.json") if cls is not None else raw
    return SavedRun(Path(folder), kind, config, saved)


def prepare_run(out: Path | None, experiment: str, config, resume: bool, given: dict | None = None):
    """Create (or, with ``resume``, reopen) a run folder; returns (folder, config).

    A resumed run uses the config saved in its folder, so it continues exactly the
    experiment it started; ``given`` (the flags given on the command line, field -> value) must
    agree with it, else a UserError names the ones that differ. A new run refuses a folder that
    already holds one.
    Under torchrun rank 0 creates the folder and the others learn its name from rank 0
    (a default name holds a timestamp); ``distributed`` records how the run is spread.
    """
    if resume:
        if out is None:
            raise UserError("--resume needs --out DIR, the run folder to continue")
        run = read_run(out, experiment)
        if distributed.is_main():
            claim(Path(out))  # a second process on this folder hears of the first before anything else
        saved, config = run.saved, config_from_json(type(config), run.config, Path(out) / "config.json")
        differ = [k for k, v in (given or {}).items() if to_json(v) != to_json(getattr(config, k, None))]
        if differ:
            listed = ", ".join(f"--{k.replace('_', '-')} {to_json(given[k])} (saved: {to_json(getattr(config, k))})"
                               for k in differ)
            raise UserError(f"--resume continues {out} with its saved config.json; these flags differ from it: "
                            f"{listed} — drop them, or start a new run with another --out")
        check_inputs(config)
        spread = distributed.describe(getattr(config, "batch_size", None))
        if saved.get("distributed", spread) != spread:  # resumed on another number of processes
            atomic_write_json(Path(out) / "config.json", {**saved, "distributed": spread})
        return Path(out), config
    check_inputs(config)
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
    out = Path(out) if out is not None else default_out(experiment)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: a file, not a folder")
    if (out / "config.json").exists():
        raise UserError(f"{out} already holds a run; pass --resume to continue it or choose another --out")
    make_folder(out)
    claim(out)  # from here on no other process can start a run in this folder
    if (out / "config.json").exists():  # one finished (or began) between the look above and the claim
        raise UserError(f"{out} already holds a run; pass --resume to continue it or choose another --out")
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


def config_from_json(cls, saved: dict, where: Path | str = "config.json"):
    """The ``cls`` config from config.json's ``"config"`` object: keys ``cls`` does not know are dropped
    (a run saved by another connlab version), missing ones take their defaults, lists become tuples.
    A config class with ``check_saved`` (``connlab.experiments.config.Config``) checks each value as its
    flag would, so a damaged file is one error naming the file and the key (``where``)."""
    if not isinstance(saved, dict):
        raise UserError(f"{where}: \"config\" is not an object; the file is damaged")
    names = {f.name for f in fields(cls)}
    check = getattr(cls, "check_saved", None)
    values = {}
    for k, v in saved.items():
        if k in names:
            if check is not None:
                check(k, v, where)
            values[k] = tuple(v) if isinstance(v, list) else v
    try:
        return cls(**values)
    except (TypeError, ValueError) as err:  # a check of the config itself (e.g. a model's) refused a value
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(f"{where}: a saved value is not valid ({first}); the file is damaged") from None


def to_json(value):
    if isinstance(value, (tuple, list)):
        return [to_json(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def resumable(folder: Path, resume: bool) -> bool:
    """Whether a training run in ``folder`` continues from a checkpoint: only with ``--resume`` and when
    one was written. A run killed before its first checkpoint (a requeued job) starts from the beginning."""
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
    atomic_write_json(Path(out) / "summary.json", summary)
    distributed.barrier()
