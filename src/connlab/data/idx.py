"""The IDX file format of MNIST and Fashion-MNIST (gzipped or raw).

Layout (big-endian): two zero bytes, a type byte (0x08 = unsigned byte), the number of
dimensions ``n``, then ``n`` int32 sizes, then the data. Only uint8 data occurs in these
data sets, so only that type is read.
"""

from __future__ import annotations

import gzip
import hashlib
import zlib
from pathlib import Path

import numpy as np

from connlab.errors import UserError

GZIP_MAGIC = b"\x1f\x8b"


def read_bytes(path: Path) -> bytes:
    """The decompressed contents of ``path`` (gzip is recognised by its magic bytes)."""
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise UserError(f"{path}: file not found") from None
    except OSError as err:
        raise UserError(f"{path}: cannot read ({err.strerror})") from None
    if raw[:2] != GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as err:
        raise UserError(f"{path}: corrupt or truncated gzip file ({err})") from None


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def parse_idx(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Parse the bytes of an IDX file into a uint8 array of the stated shape."""
    if len(data) < 4 or data[0:2] != b"\x00\x00":
        raise UserError(f"{name}: not an IDX file (wrong magic number {data[:4].hex() or 'empty'})")
    if data[2] != 0x08:
        raise UserError(f"{name}: IDX data type 0x{data[2]:02x} is not 0x08 (unsigned byte)")
    ndim = data[3]
    if not 1 <= ndim <= 4:
        raise UserError(f"{name}: IDX header claims {ndim} dimensions, expected 1 to 4")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise UserError(f"{name}: truncated IDX header ({len(data)} bytes)")
    shape = tuple(int(s) for s in np.frombuffer(data, dtype=">i4", count=ndim, offset=4))
    expected = header + int(np.prod(shape))
    if len(data) != expected:
        raise UserError(
            f"{name}: IDX file has {len(data)} bytes, its header {shape} needs {expected} (truncated or corrupt)"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape).copy()


def read_idx(path: Path, expected_sha256: str | None = None) -> np.ndarray:
    """Read one IDX file, verifying the SHA-256 of its decompressed contents if given."""
    data = read_bytes(path)
    if expected_sha256 is not None:
        digest = sha256(data)
        if digest != expected_sha256:
            raise UserError(
                f"{path}: checksum mismatch (SHA-256 of contents {digest[:16]}…, expected {expected_sha256[:16]}…)"
            )
    return parse_idx(data, str(path))


def write_idx(array: np.ndarray, path: Path, compress: bool | None = None) -> None:
    """Write a uint8 array as an IDX file (gzipped when the name ends in .gz); used by tests and tools."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + np.asarray(array.shape, dtype=">i4").tobytes()
    data = header + array.tobytes()
    compress = str(path).endswith(".gz") if compress is None else compress
    Path(path).write_bytes(gzip.compress(data, mtime=0) if compress else data)
