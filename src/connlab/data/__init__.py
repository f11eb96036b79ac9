"""Data: MNIST / Fashion-MNIST (IDX files, checksums, cache, embedded real subset), noise, pixel ranges."""

from connlab.data.datasets import DATASETS, ImageData, cache_dir, load_dataset, stratified_first
from connlab.data.idx import parse_idx, read_idx, write_idx
from connlab.data.images import signed_to_unit, to_uint8, to_unit, unit_to_signed
from connlab.data.noise import NOISE_DISTS, check_noise, corrupt, draw_noise

__all__ = [
    "DATASETS", "ImageData", "cache_dir", "load_dataset", "stratified_first",
    "parse_idx", "read_idx", "write_idx",
    "signed_to_unit", "to_uint8", "to_unit", "unit_to_signed",
    "NOISE_DISTS", "check_noise", "corrupt", "draw_noise",
]
