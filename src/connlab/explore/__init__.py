"""``connlab explore RUN_DIR [--out FILE]``: the lab's trained models live in one offline page.

``export`` turns the networks of the run folders into ONNX files with recorded test cases;
``page`` writes ``explorer.html`` (runtime, models and test digits inside). This layer sits
above the experiments: only the CLI and the demo import it.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def write_explorer(run_dir: Path, out: Path | None = None, log=None) -> Path:
    """Write the explorer page for ``run_dir`` (a demo folder or one run); returns its path."""
    # lazy: the page imports torch and the exporters (~2 s); `connlab explore --help` stays without them
    from connlab.explore.page import write_explorer as write

    return write(run_dir, out, log)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR",
                   help="a demo folder (runs/demo) or one experiment's run folder")
    p.add_argument("--out", type=Path, default=None, help="the page to write (default RUN_DIR/explorer.html)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    page = write_explorer(args.run_dir, args.out)
    print(page)
    return 0
