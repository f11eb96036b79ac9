"""Atomic files and checkpoints: weights in safetensors, the rest of the training state beside them.

A checkpoint is a folder ``checkpoints/step-0000123/`` holding ``model.safetensors`` and
``state.pt`` (optimizer, RNG states, step, history). It is written as a hidden temporary
folder and renamed into place, so a process killed mid-write leaves only a temporary
folder that is ignored, and the previous checkpoint stays loadable.

Under torchrun only rank 0 writes: the writers here return without writing on other ranks
(``connlab.runtime.distributed.is_main``), so callers need no rank checks.
"""

from __future__ import annotations

import errno
import io
import json
import os
import pickle
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import BinaryIO, Callable

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save as save_tensors

from connlab.runtime.distributed import is_main
from connlab.errors import UserError

KEEP = 2


class UnreadableCheckpoint(UserError):
    """A weights or state file that cannot be read (truncated, not safetensors, not a saved state)."""


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def _plain_mode(path: str, folder: bool = False) -> None:
    """Give a temporary file (or folder) the mode a plain ``open(path, "w")`` (``mkdir``) would: mkstemp
    and mkdtemp make them 0600 / 0700, so a report or a run folder shared on a cluster would not stay
    readable by the group, as the user's umask says."""
    os.chmod(path, (0o777 if folder else 0o666) & ~_umask())


def write_error(path: Path, err: OSError) -> UserError:
    """The one line for an output that cannot be written: a full disk says so."""
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        return UserError(f"{path}: disk full (no space left on the device) — free some space, then rerun "
                         "(a training run continues with --resume)")
    if isinstance(err, IsADirectoryError) or (Path(path).is_dir() and not Path(path).is_symlink()):
        return UserError(f"{path}: is a folder, not a file name")
    return UserError(f"{path}: cannot write it ({err.strerror or err})")


def atomic_write(path: Path, write: Callable[[BinaryIO], object]) -> Path:
    """The one way an output reaches the disk (rank 0 only): ``write(f)`` fills a temporary file created
    exclusively (``O_CREAT | O_EXCL``, by ``mkstemp``) in the target folder, which is then renamed over
    ``path``. The rename replaces whatever is at ``path`` (a planted link too) and never writes through
    it; a reader never sees half a file. An ``OSError`` (a full disk, a read-only or missing folder)
    becomes one ``UserError`` line naming the file."""
    path = Path(path)
    if not is_main():
        return path
    if path.is_dir() and not path.is_symlink():
        raise UserError(f"{path}: is a folder, not a file name")
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        _plain_mode(tmp)
        os.replace(tmp, path)
        tmp = None
    except OSError as err:
        raise write_error(path, err) from None
    finally:
        if tmp is not None and os.path.lexists(tmp):
            os.unlink(tmp)
    return path


def atomic_write_bytes(path: Path, data: bytes) -> Path:
    return atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path: Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` through ``atomic_write`` (rank 0 only)."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, obj) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2) + "\n")


def check_output(path: Path, flag: str) -> Path:
    """Before the work: ``path`` can be written (its folder exists or is made, a file can be created there,
    it is not a folder), else one ``UserError`` naming ``flag``."""
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        raise UserError(f"{flag} {path}: is a folder, not a file name")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path.parent):
            pass
    except OSError as err:
        raise UserError(f"{flag} {path}: cannot write there ({err.strerror or err})") from None
    return path


def save_weights(model: torch.nn.Module, path: Path, metadata: dict | None = None) -> None:
    """Model weights (parameters and buffers) as safetensors, written atomically (rank 0 only)."""
    if not is_main():
        return
    tensors = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    meta = {k: json.dumps(v) for k, v in (metadata or {}).items()}
    # serialised in memory, then written by atomic_write: a full disk is an OSError it names, not a
    # SafetensorError from inside the library
    atomic_write_bytes(Path(path), save_tensors(tensors, metadata=meta))


def read_weights(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    """The tensors and metadata of a safetensors file; a clear error if it is not one."""
    path = Path(path)
    if not path.is_file():
        raise UnreadableCheckpoint(f"{path}: weights file not found")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = {k: json.loads(v) for k, v in (f.metadata() or {}).items()}
        return load_file(str(path)), meta
    except (SafetensorError, OSError, ValueError) as err:
        raise UnreadableCheckpoint(f"{path}: not a readable safetensors file ({err})") from None


def load_weights(model: torch.nn.Module, path: Path, signature: dict | None = None) -> dict:
    """Load weights into ``model``, checking they belong to a model of the same kind."""
    tensors, meta = read_weights(path)
    check_signature(meta.get("signature"), signature, path)
    try:
        model.load_state_dict(tensors)
    except RuntimeError as err:
        first = str(err).strip().splitlines()[0]
        raise UserError(f"{path}: weights do not fit this model ({first})") from None
    return meta


def model_signature(model: torch.nn.Module, config: dict | None = None) -> dict:
    """What a checkpoint must match to be loaded into ``model``: class, config, parameter shapes."""
    return {
        "model": type(model).__name__,
        "config": config or {},
        "shapes": {k: list(v.shape) for k, v in model.state_dict().items()},
    }


def check_signature(saved: dict | None, expected: dict | None, path: Path) -> None:
    if saved is None or expected is None or saved == expected:
        return
    if saved.get("model") != expected.get("model") or saved.get("config") != expected.get("config"):
        raise UserError(
            f"{path}: checkpoint of another model ({saved.get('model')} {saved.get('config')}), "
            f"expected {expected.get('model')} {expected.get('config')}"
        )
    raise UserError(f"{path}: checkpoint parameter shapes differ from this model's")


def write_checkpoint(folder: Path, step: int, model: torch.nn.Module, state: dict, signature: dict) -> Path:
    """Write ``folder/step-N`` atomically and prune all but the newest ``KEEP`` checkpoints (rank 0 only)."""
    final = folder / f"step-{step:07d}"
    if not is_main():
        return final
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=folder, prefix=f".tmp-step-{step:07d}-"))
        _plain_mode(str(tmp), folder=True)
    except OSError as err:
        raise write_error(folder, err) from None
    try:
        _write_checkpoint_files(tmp, model, state, signature)
        _remove(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for old in list_checkpoints(folder)[:-KEEP]:
        _remove(old)
    return final


def _remove(path: Path) -> None:
    """Remove a file, a link (not what it points to) or a folder tree at ``path``, if there is one."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path, ignore_errors=True)


def remove_stale_temporaries(folder: Path) -> None:
    """Drop the temporary folders of checkpoint writes that were killed (call it while holding the run)."""
    if is_main() and folder.is_dir():
        for p in folder.iterdir():
            if p.name.startswith(".tmp-step-"):
                _remove(p)


def _write_checkpoint_files(tmp: Path, model: torch.nn.Module, state: dict, signature: dict) -> None:
    save_weights(model, tmp / "model.safetensors", {"signature": signature})
    buffer = io.BytesIO()  # in memory first: a full disk is then an OSError, not torch's zip-writer failure
    torch.save(state, buffer)
    atomic_write_bytes(tmp / "state.pt", buffer.getvalue())


def list_checkpoints(folder: Path) -> list[Path]:
    """Complete checkpoints, oldest first (temporary folders of interrupted writes, and links, which
    could point outside the run, are skipped)."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir()
                  if p.name.startswith("step-") and not p.is_symlink() and p.is_dir())


def read_checkpoint(path: Path, model: torch.nn.Module, signature: dict) -> dict:
    """Load a checkpoint's weights into ``model`` and return its training state."""
    load_weights(model, path / "model.safetensors", signature)
    state = path / "state.pt"
    if not zipfile.is_zipfile(state):  # torch.save writes a zip archive; a cut or foreign file is not one
        why = "missing" if not state.is_file() else "truncated or not written by torch.save (no zip archive)"
        raise UnreadableCheckpoint(f"{state}: unreadable training state ({why})")
    try:
        return torch.load(state, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, OSError, pickle.UnpicklingError) as err:  # a damaged archive or its pickle
        first = (str(err).strip().splitlines() or [""])[0]
        raise UnreadableCheckpoint(f"{state}: unreadable training state ({type(err).__name__}: {first})") from err
