"""``connlab data``: which data set would be used, from where, and its class counts."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    from connlab.experiments.common import positive_int

    p.add_argument("--dataset", default="mnist", help="mnist, mnist-embedded or fashion")
    p.add_argument("--data-dir", type=Path, default=None, help="folder with the four IDX files (raw or .gz)")
    p.add_argument("--limit", type=positive_int, default=None, help="first N training images (stratified)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from connlab.data import load_dataset

    data = load_dataset(args.dataset, args.data_dir, args.limit)
    print(json.dumps(data.describe()))
    return 0
