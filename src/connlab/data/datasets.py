"""MNIST and Fashion-MNIST: where they come from and how they reach the device.

Sources, in order, for ``mnist``:
1. ``--data-dir PATH`` — the four IDX files (gzipped or raw); missing files are an error;
2. the cache ``$CONNLAB_DATA/mnist`` (default ``~/.cache/connlab``);
3. a download from the public mirrors into the cache (progress bar, SHA-256 verified,
   written to a temporary file and renamed, so the cache never holds half a file);
4. the embedded real subset (9,000 train / 1,000 test), with a one-line notice.
``mnist-embedded`` is always 4; ``fashion`` has 1-3 plus Debian's ``dataset-fashion-mnist``
(``/usr/share/datasets/fashion-mnist``) and no embedded fallback.

Every file is verified by the SHA-256 of its *decompressed* contents, so a gzipped and a
raw copy of the same file both pass.
"""

from __future__ import annotations

import gzip
import http.client
import os
import sys
import tempfile
import urllib.request
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from connlab.data.idx import parse_idx, read_idx, sha256
from connlab.errors import UserError

FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")

CHECKSUMS = {
    "mnist": dict(zip(FILES, (
        "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    ))),
    "fashion": dict(zip(FILES, (
        "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    ))),
}

MIRRORS = {
    "mnist": (
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ),
    "fashion": ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
}
SYSTEM_DIRS = {"mnist": (), "fashion": (Path("/usr/share/datasets/fashion-mnist"),)}
DATASETS = ("mnist", "mnist-embedded", "fashion")
EMBEDDED = "mnist_embedded.npz"


@dataclass(frozen=True)
class ImageData:
    """A labelled image data set: uint8 images (N, 1, 28, 28) and int64 labels (N,)."""

    name: str
    source: str  # "full", "embedded" or the folder the files came from
    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor

    def to(self, device: torch.device | str) -> "ImageData":
        """The whole data set on ``device``, copied once (no per-batch host->device copies)."""
        move = lambda t: t.to(device, non_blocking=True)  # noqa: E731
        return ImageData(self.name, self.source, move(self.train_images), move(self.train_labels),
                         move(self.test_images), move(self.test_labels))

    def describe(self) -> dict:
        count = lambda y: torch.bincount(y.cpu(), minlength=10).tolist()  # noqa: E731
        return {
            "dataset": self.name, "source": self.source,
            "train": len(self.train_labels), "test": len(self.test_labels),
            "train_per_class": count(self.train_labels), "test_per_class": count(self.test_labels),
        }


def cache_dir() -> Path:
    return Path(os.environ.get("CONNLAB_DATA") or Path.home() / ".cache" / "connlab")


def notice(message: str) -> None:
    print(f"connlab: {message}", file=sys.stderr)


def stratified_first(labels: np.ndarray, n: int) -> np.ndarray:
    """Indices of the first ``n`` items, taken per class in proportion to class frequency."""
    if n >= len(labels):
        return np.arange(len(labels))
    classes, counts = np.unique(labels, return_counts=True)
    exact = counts * n / len(labels)
    quota = np.floor(exact).astype(int)
    for i in np.argsort(-(exact - quota), kind="stable")[: n - quota.sum()]:  # largest remainders
        quota[i] += 1
    picks = [np.flatnonzero(labels == c)[:q] for c, q in zip(classes, quota)]
    return np.sort(np.concatenate(picks))


def _find_files(folder: Path) -> dict[str, Path] | None:
    found = {}
    for name in FILES:
        for candidate in (folder / f"{name}.gz", folder / name):
            if candidate.is_file():
                found[name] = candidate
                break
    return found if len(found) == len(FILES) else None


def _read_folder(name: str, files: dict[str, Path]) -> tuple[np.ndarray, ...]:
    arrays = [read_idx(files[f], CHECKSUMS[name][f]) for f in FILES]
    return tuple(arrays)


def _download(name: str, target: Path, mirrors: tuple[str, ...]) -> str | None:
    """Download the four files into ``target``; return None on success, else the reason."""
    try:  # $CONNLAB_DATA may be a file or a read-only folder: then there is no cache to download into
        target.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        return f"cannot make the cache folder {target} ({err.strerror or err})"
    for fname in FILES:
        if (target / f"{fname}.gz").is_file():
            continue
        reasons = []
        for mirror in mirrors:
            url = f"{mirror}{fname}.gz"
            try:
                tmp = tempfile.NamedTemporaryFile(dir=target, prefix=f".{fname}.", suffix=".part", delete=False)
            except OSError as err:
                return f"cannot write in the cache folder {target} ({err.strerror or err})"
            try:
                with urllib.request.urlopen(url, timeout=15) as response, tmp:
                    total = int(response.headers.get("Content-Length") or 0) or None
                    with tqdm(total=total, unit="B", unit_scale=True, desc=fname,
                              disable=not sys.stderr.isatty()) as bar:
                        while chunk := response.read(1 << 16):
                            tmp.write(chunk)
                            bar.update(len(chunk))
                digest = sha256(gzip.decompress(Path(tmp.name).read_bytes()))
                if digest != CHECKSUMS[name][fname]:
                    raise ValueError(f"checksum mismatch for {url}")
                os.replace(tmp.name, target / f"{fname}.gz")
                break
            except (OSError, ValueError, EOFError, http.client.HTTPException) as err:
                reasons.append(f"{url}: {getattr(err, 'reason', err)}")
            finally:
                if os.path.exists(tmp.name):
                    os.unlink(tmp.name)
        else:
            return "; ".join(reasons)
    return None


def _mirrors(name: str) -> tuple[str, ...]:
    override = os.environ.get("CONNLAB_MIRRORS")
    if override is not None:
        return tuple(m if m.endswith("/") else m + "/" for m in override.split())
    return MIRRORS[name]


def _load_embedded() -> tuple[np.ndarray, ...]:
    with resources.files("connlab.data").joinpath(EMBEDDED).open("rb") as f:
        z = np.load(f)
        return tuple(z[k] for k in ("train_images", "train_labels", "test_images", "test_labels"))


def check_source(name: str, data_dir: Path | str | None = None, verify: bool = False) -> dict[str, Path] | None:
    """A known data set name, and a ``--data-dir`` that holds the four files (their files, then; None
    without ``--data-dir``); with ``verify`` their checksums too. Run before a run folder is made."""
    if not isinstance(name, str) or name not in DATASETS:
        raise UserError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    if data_dir is None or name == "mnist-embedded":
        return None
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise UserError(f"--data-dir {data_dir}: no such folder")
    files = _find_files(data_dir)
    if files is None:
        missing = [f for f in FILES if not (data_dir / f).is_file() and not (data_dir / f"{f}.gz").is_file()]
        raise UserError(f"--data-dir {data_dir}: missing {', '.join(missing)} (raw or .gz)")
    if verify:
        for f in FILES:
            read_idx(files[f], CHECKSUMS[name][f])
    return files


def _load_arrays(name: str, data_dir: Path | None) -> tuple[str, tuple[np.ndarray, ...]]:
    files = check_source(name, data_dir)
    if name == "mnist-embedded":
        return "embedded", _load_embedded()
    if files is not None:
        return str(data_dir), _read_folder(name, files)
    cache = cache_dir() / ("mnist" if name == "mnist" else "fashion-mnist")
    for folder in (cache, *SYSTEM_DIRS[name]):
        files = _find_files(folder)
        if files is not None:
            return ("full" if name == "mnist" else str(folder)), _read_folder(name, files)
    reason = _download(name, cache, _mirrors(name))
    if reason is None:
        return ("full" if name == "mnist" else str(cache)), _read_folder(name, _find_files(cache))
    if name == "fashion":
        raise UserError(f"Fashion-MNIST not found in {cache} or /usr/share/datasets/fashion-mnist "
                        f"(apt-get install dataset-fashion-mnist, or --data-dir) and not downloadable: {reason}")
    notice(f"full MNIST not in {cache} and not downloadable; using the embedded real subset (9,000 train / 1,000 test)")
    return "embedded", _load_embedded()


def load_dataset(name: str = "mnist", data_dir: Path | str | None = None, limit: int | None = None) -> ImageData:
    """Load a data set on the CPU; ``limit`` keeps the first N training images, stratified."""
    if limit is not None and limit < 1:
        raise UserError(f"--limit must be >= 1, got {limit}")
    source, (xtr, ytr, xte, yte) = _load_arrays(name, data_dir)
    if xtr.shape[1:] != (28, 28) or len(xtr) != len(ytr) or len(xte) != len(yte):
        raise UserError(f"dataset {name!r} from {source}: unexpected shapes {xtr.shape}, {ytr.shape}, {xte.shape}, {yte.shape}")
    if limit is not None:
        keep = stratified_first(ytr, limit)
        xtr, ytr = xtr[keep], ytr[keep]
    as_images = lambda a: torch.from_numpy(np.ascontiguousarray(a)).unsqueeze(1)  # (N, 1, 28, 28)  # noqa: E731
    as_labels = lambda a: torch.from_numpy(a.astype(np.int64))  # noqa: E731
    return ImageData(name, source, as_images(xtr), as_labels(ytr), as_images(xte), as_labels(yte))


__all__ = ["ImageData", "load_dataset", "DATASETS", "FILES", "CHECKSUMS", "cache_dir", "parse_idx", "stratified_first"]
