"""Depth over seeds: does the shallowest plain net learn, does the plain net degrade, does residual fix it?

    python benchmarks/depth_regime.py --out DIR [--seeds 5] -- --depths 2,8,16 --epochs 3 --limit 3000 \\
        --batch-size 32 --lr 3e-3

Runs ``connlab depth FLAGS --seed S --out DIR/seedS`` for S = 0 … seeds−1, one thread each
(CPU seconds per seed are printed: fair on a shared machine), then prints per depth and kind
the mean final training loss and test error, and the depth rules of docs/evidence-budgets.md
computed with ``connlab.evidence.compare`` (paired by seed; a 95 % family over the shallower
depths). A finished seed folder is read, not rerun.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("flags", nargs=argparse.REMAINDER, help="connlab depth flags, after --")
    args = p.parse_args()
    flags = [f for f in args.flags if f != "--"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "src")}
    runs = []
    for seed in range(args.seeds):
        folder = args.out / f"seed{seed}"
        if not (folder / "summary.json").is_file():
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            subprocess.run([sys.executable, "-m", "connlab.cli", "depth", *flags, "--seed", str(seed),
                            "--device", "cpu", "--out", str(folder)], check=True, env=env,
                           stdout=subprocess.DEVNULL)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            print(f"seed {seed}: {after.ru_utime - before.ru_utime:.1f} CPU s", flush=True)
        runs.append(json.loads((folder / "summary.json").read_text()))
    report(runs)


def report(runs: list[dict]) -> None:
    from connlab.evidence import compare

    depths = runs[0]["depths"]
    deep, shallower = max(depths), [d for d in depths if d != max(depths)]
    loss = {k: {d: [r["results"][k][str(d)]["final_train_loss"] for r in runs] for d in depths}
            for k in ("plain", "residual")}
    print(f"| kind | depth | train loss (mean) | test error (mean, worst) |\n|---|---:|---:|---:|")
    for k in ("plain", "residual"):
        for d in depths:
            errs = [r["results"][k][str(d)]["test_error"] for r in runs]
            print(f"| {k} | {d} | {sum(loss[k][d]) / len(runs):.3f} | "
                  f"{100 * sum(errs) / len(errs):.1f} %, {100 * max(errs):.1f} % |")
    if not shallower:
        return
    conf = 1 - 0.05 / len(shallower)
    for d in shallower:
        ev = compare(loss["plain"][d], loss["plain"][deep], better="higher", confidence=conf)
        print(f"plain d{deep} trains worse than plain d{d}: {ev.text('train loss', '.3f')} -> {ev.verdict}")
        ev = compare(loss["residual"][d], loss["residual"][deep], better="lower", confidence=conf)
        print(f"residual d{deep} trains better than residual d{d}: {ev.text('train loss', '.3f')} -> {ev.verdict}")
        gap = {k: [b - a for a, b in zip(loss[k][d], loss[k][deep])] for k in loss}
        ev = compare(gap["plain"], gap["residual"], better="lower", confidence=conf)
        print(f"residual gap d{d}->d{deep} smaller than plain's: {ev.text('gap', '.3f')} -> {ev.verdict}")


if __name__ == "__main__":
    main()
