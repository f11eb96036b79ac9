"""Atomic files and checkpoints: weights in safetensors, the rest of the training state beside them.

A checkpoint is a folder ``checkpoints/step-0000123/`` holding ``model.safetensors`` and
``state.pt`` (optimizer, RNG states, step, history). It is written as a hidden temporary
folder and renamed into place, so a process killed mid-write leaves only a temporary
folder that is ignored, and the previous checkpoint stays loadable.

Under torchrun only rank 0 writes: the writers here return without writing on other ranks
(``connlab.runtime.distributed.is_main``), so callers need no rank checks.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import tempfile
import zipfile
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from connlab.runtime.distributed import is_main
from connlab.errors import UserError

KEEP = 2


class UnreadableCheckpoint(UserError):
    """A weights or state file that cannot be read (truncated, not safetensors, not a saved state)."""


def _plain_mode(path: str) -> None:
    """Give a temporary file the mode a plain ``open(path, "w")`` would (mkstemp makes it 0600), so a
    report or a run folder shared on a cluster stays readable by the group, as the user's umask says."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file in the same folder and a rename (rank 0 only)."""
    if not is_main():
        return
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        _plain_mode(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_json(path: Path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2) + "\n")


def save_weights(model: torch.nn.Module, path: Path, metadata: dict | None = None) -> None:
    """Model weights (parameters and buffers) as safetensors, written atomically (rank 0 only)."""
    if not is_main():
        return
    path = Path(path)
    tensors = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    meta = {k: json.dumps(v) for k, v in (metadata or {}).items()}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata=meta)
        _plain_mode(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def read_weights(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    """The tensors and metadata of a safetensors file; a clear error if it is not one."""
    path = Path(path)
    if not path.is_file():
        raise UnreadableCheckpoint(f"{path}: weights file not found")
    try:
        from safetensors import safe_open

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
    folder.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder, prefix=f".tmp-step-{step:07d}-"))
    try:
        _write_checkpoint_files(tmp, model, state, signature)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for old in list_checkpoints(folder)[:-KEEP]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def _write_checkpoint_files(tmp: Path, model: torch.nn.Module, state: dict, signature: dict) -> None:
    save_weights(model, tmp / "model.safetensors", {"signature": signature})
    with open(tmp / "state.pt", "wb") as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())


def list_checkpoints(folder: Path) -> list[Path]:
    """Complete checkpoints, oldest first (temporary folders of interrupted writes are skipped)."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_dir() and p.name.startswith("step-"))


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
