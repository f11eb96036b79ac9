"""A command's fixed cost: its wall time as a whole process minus the time its training loop measured.

    python benchmarks/fixed_cost.py [--runs 5] [--json out.json] [--src DIR --src OTHER_DIR]

Each command runs ``--runs`` times as a fresh subprocess (``python -m connlab.cli ...``) into a new
run folder; the table gives medians. "train s" is the sum of the ``seconds`` of every epoch line in
the run's ``metrics.jsonl`` files (the trainer's own clock: steps only, no evaluation, checkpoints or
figures), so "fixed s" = wall − train is everything else: interpreter and imports, data loading,
model set-up, evaluation, figures, summaries. ``python -c "import torch"`` and the same plus one
``torch.optim.Adam`` (which imports ``torch._dynamo``) are timed the same way: the floor no command,
and no command that trains, can go below.

The numbers depend on the machine and on what else runs on it: the script prints the load average
before and after, and the CPU count. To compare two versions of the code (e.g. before and after a
change: ``git archive COMMIT src | tar -x -C /tmp/old``), give each ``src`` folder with ``--src``: the
runs are interleaved (round r runs every command on every version), so a slow minute hurts all alike.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

COMMANDS = {
    "import torch (floor)": ["-c", "import torch"],
    # every training command builds a torch.optim optimizer, whose constructor imports torch._dynamo
    # (Optimizer.add_param_group is wrapped in torch._disable_dynamo): the floor of a command that trains
    "import torch + one Adam (training floor)": [
        "-c", "import torch; torch.optim.Adam([torch.zeros(1, requires_grad=True)])"],
    "connlab --help": ["-m", "connlab.cli", "--help"],
    "connlab autoencoder --skip concat --epochs 1 --limit 128": [
        "-m", "connlab.cli", "autoencoder", "--skip", "concat", "--epochs", "1", "--limit", "128"],
    "connlab gates --epochs 1 --train-points 512": [
        "-m", "connlab.cli", "gates", "--epochs", "1", "--train-points", "512"],
}
TAKES_OUT = ("autoencoder", "gates")


def train_seconds(run: Path) -> float:
    """Seconds of training steps the trainer recorded in the run folder (all variants and seeds)."""
    total = 0.0
    for path in run.rglob("metrics.jsonl"):
        total += sum(json.loads(line)["seconds"] for line in path.read_text().splitlines() if line.strip())
    return total


def time_once(args: list[str], scratch: Path, env: dict) -> tuple[float, float]:
    """Wall seconds of one run of ``python ARGS`` and the training seconds its run folder records."""
    out = scratch / f"run-{time.monotonic_ns()}"
    argv = [sys.executable, *args] + (["--out", str(out)] if any(c in args for c in TAKES_OUT) else [])
    t0 = time.perf_counter()
    done = subprocess.run(argv, cwd=scratch, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return wall, (train_seconds(out) if out.exists() else 0.0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", type=Path, default=None, help="also write the medians here")
    parser.add_argument("--src", type=Path, action="append", default=None,
                        help="a connlab src folder to time (repeat to compare versions; default: this checkout's)")
    args = parser.parse_args()
    sources = [p.resolve() for p in args.src] if args.src else [ROOT / "src"]

    def env(src: Path) -> dict:
        return {**os.environ, "PYTHONPATH": str(src), "CONNLAB_MIRRORS": ""}  # embedded digits: no network

    load_before = os.getloadavg()
    times: dict[tuple[str, str], list[tuple[float, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="connlab-fixed-cost-") as tmp:
        scratch = Path(tmp)
        time_once(COMMANDS["import torch (floor)"], scratch, env(sources[0]))  # warm the file cache once
        for _ in range(args.runs):
            for name, command in COMMANDS.items():
                for src in sources if "connlab" in name else sources[:1]:  # the floors do not import connlab
                    times.setdefault((str(src), name), []).append(time_once(command, scratch, env(src)))
    load_after = os.getloadavg()
    rows = []
    for (src, name), runs in times.items():
        walls, trains = zip(*runs)
        fixed = [w - t for w, t in runs]
        rows.append({"src": src, "command": name, "wall_s": statistics.median(walls),
                     "train_s": statistics.median(trains), "fixed_s": statistics.median(fixed),
                     "fixed_min_s": min(fixed), "runs": len(runs)})
    print(f"{os.cpu_count()} CPUs, load average {load_before[0]:.1f} before, {load_after[0]:.1f} after; "
          f"median of {args.runs} interleaved runs each")
    show_src = len(sources) > 1
    print(("| src " if show_src else "") + "| command | wall s | train s | fixed s (median) | fixed s (min) |")
    print(("|---" if show_src else "") + "|---|---:|---:|---:|---:|")
    for r in sorted(rows, key=lambda r: (list(COMMANDS).index(r["command"]), r["src"])):
        print((f"| {r['src']} " if show_src else "") + f"| `{r['command']}` | {r['wall_s']:.2f} | "
              f"{r['train_s']:.2f} | {r['fixed_s']:.2f} | {r['fixed_min_s']:.2f} |")
    if args.json:
        args.json.write_text(json.dumps({"cpus": os.cpu_count(), "load_before": load_before,
                                         "load_after": load_after, "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
