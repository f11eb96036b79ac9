"""``connlab data``: which data set would be used, from where, and its class counts."""

from __future__ import annotations

import argparse
import json

from connlab.data import load_dataset
from connlab.experiments.common import TRAINING, DataSettings


def add_arguments(p: argparse.ArgumentParser) -> None:
    DataSettings.add_flags(p, groups={TRAINING: "data"})  # the training commands' data flags, same defaults
    p.set_defaults(run=lambda args: run(DataSettings.from_args(args)))


def run(data_settings: DataSettings) -> int:
    data = load_dataset(data_settings.dataset, data_settings.data_dir, data_settings.limit)
    print(json.dumps(data.describe()))
    return 0
