"""The course's data: MNIST's first training digits, in MNIST's order, and a validation set.

The course's notebooks train on ``X_train[:1000]`` — the first 1,000 digits of MNIST's training
file — and validate on MNIST's test set (Exercise 1, the diffusion notebook) or on its first
digits (the residual notebook).  The embedded subset holds the first 10,000 training digits with
each one's position in MNIST's file (``train_mnist_index``), so the first 1,000 are always here,
offline.  Validation comes from MNIST's test set when the full MNIST is at hand (``--data-dir``
or the cache); otherwise from the 9,000 embedded digits that are not among the first 1,000, which
no course model trains on.  ``CourseData.validation`` says which, for the run folder and the page.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from connlab.data.datasets import EMBEDDED, FILES, ImageData, _find_files, _read_folder, cache_dir
from connlab.errors import UserError

COURSE_TRAIN = 1_000  # the course's X_train[:1000]
DATASET = "course"    # the --dataset name of these digits (the autoencoder's --preset course sets it)


@dataclass(frozen=True)
class CourseData:
    data: ImageData      # train: MNIST's first ``n_train`` training digits, in MNIST's order; test: validation
    validation: str      # "mnist-test" or "embedded-rest"

    def describe(self) -> dict:
        where = {"mnist-test": "MNIST's test set",
                 "embedded-rest": "embedded digits outside MNIST's first training digits (no course model trains on them)"}
        return {**self.data.describe(), "validation": self.validation, "validation_text": where[self.validation]}


def _embedded_in_mnist_order() -> tuple[np.ndarray, np.ndarray]:
    with resources.files("connlab.data").joinpath(EMBEDDED).open("rb") as f:
        z = np.load(f)
        images = np.concatenate([z["train_images"], z["test_images"]])
        labels = np.concatenate([z["train_labels"], z["test_labels"]])
        position = np.concatenate([z["train_mnist_index"], z["test_mnist_index"]]).astype(np.int64)
    order = np.argsort(position)
    assert np.array_equal(position[order], np.arange(len(position))), "embedded digits are MNIST's first 10,000"
    return images[order], labels[order]


def _full_mnist(data_dir: Path | None) -> tuple[np.ndarray, ...] | None:
    folder = Path(data_dir) if data_dir is not None else cache_dir() / "mnist"
    files = _find_files(folder) if folder.is_dir() else None
    if files is None:
        if data_dir is not None:
            raise UserError(f"--data-dir {data_dir}: the four MNIST files ({', '.join(FILES)}) are not all there")
        return None
    return _read_folder("mnist", files)


def load_course_data(data_dir: Path | str | None = None, n_train: int = COURSE_TRAIN,
                     n_validation: int | None = None) -> CourseData:
    """MNIST's first ``n_train`` training digits and a validation set (its first ``n_validation``, or all).

    The training digits are the same bytes whether the full MNIST is present or not.
    """
    if not 1 <= n_train <= 5_000:
        raise UserError(f"course data: n_train must be in 1..5000 (the embedded set holds MNIST's first "
                        f"10,000 training digits), got {n_train}")
    images, labels = _embedded_in_mnist_order()
    full = _full_mnist(data_dir)
    if full is not None:
        val_x, val_y, validation = full[2], full[3], "mnist-test"
    else:
        val_x, val_y, validation = images[n_train:], labels[n_train:], "embedded-rest"
    if n_validation is not None:
        val_x, val_y = val_x[:n_validation], val_y[:n_validation]
    as_images = lambda a: torch.from_numpy(np.ascontiguousarray(a)).unsqueeze(1)  # (N, 1, 28, 28)  # noqa: E731
    as_labels = lambda a: torch.from_numpy(a.astype(np.int64))  # noqa: E731
    source = "full" if full is not None else "embedded"
    data = ImageData("mnist-course", source, as_images(images[:n_train]), as_labels(labels[:n_train]),
                     as_images(val_x), as_labels(val_y))
    return CourseData(data, validation)
