"""Speed of explorer.html in headless Chromium: page ready, an autoencoder pass after a stroke, DDIM-20.

    python benchmarks/explorer.py RUN_DIR [--page FILE] [--repeat 3] [--json OUT]

RUN_DIR is a demo folder (``runs/demo``) or anything ``connlab explore`` takes.  The page is
written once (``--page`` reuses an existing one), then opened ``--repeat`` times from
``file://`` in Debian's Chromium (``/usr/bin/chromium``, through Playwright).  Each round:

- ready: ``performance.now()`` when the runtime and every model are loaded, the in-page self-test is
  done, each panel has run its models once on the first test digit and that frame is painted
  (``explorer.state.timing.ready_ms``; target ≤ 2 s);
- ae_pass: a mouse stroke on the drawing, then the page's own timing of the pass that ran the three
  autoencoders on the final drawing and drew them (``timing.ae_ms``; target ≤ 50 ms);
- ae_after_input: from the stroke's last input event (its ``timeStamp``, when the browser received it)
  to the painted frame that shows the autoencoders' outputs for it, waiting for a pass already running
  included (``timing.ae_after_input_ms``: ``requestAnimationFrame``, then a posted message, after the
  canvases are drawn; target ≤ 50 ms);
- ddim20: DDIM-20 of one digit with its decoding, Generate clicked, to the painted frame
  (``timing.ddim_painted_ms``; target ≤ 1 s).

Each row prints the median over rounds and its ratio to the target (≤ 1 meets it).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

TARGETS_MS = {"ready": 2000.0, "ae_pass": 50.0, "ae_after_input": 50.0, "ddim20": 1000.0}


def measure(page: Path, repeat: int) -> dict[str, list[float]]:
    from playwright.sync_api import sync_playwright

    rows: dict[str, list[float]] = {k: [] for k in TARGETS_MS}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        for _ in range(repeat):
            pg = browser.new_page()
            pg.goto(page.resolve().as_uri())
            pg.wait_for_selector("body[data-ready=true]", timeout=120_000)
            report = json.loads(pg.inner_text("#self-test"))
            if report["errors"]:
                sys.exit(f"self-test failed: {report['errors']}")
            rows["ready"].append(pg.evaluate("explorer.state.timing.ready_ms"))
            if pg.evaluate("!!explorer.state.ae.concat"):
                box = pg.locator("#draw").bounding_box()
                pg.mouse.move(box["x"] + 60, box["y"] + 200)
                pg.mouse.down()
                for k in range(1, 9):
                    pg.mouse.move(box["x"] + 60 + 20 * k, box["y"] + 200 - 18 * k)
                pg.mouse.up()
                pg.evaluate("explorer.settled()")  # the passes and the frames that paint them
                rows["ae_pass"].append(pg.evaluate("explorer.state.timing.ae_ms"))
                rows["ae_after_input"].append(pg.evaluate("explorer.state.timing.ae_after_input_ms"))
            if pg.evaluate("!!explorer.state.diffusion"):
                pg.fill("#ddim-steps", "20")
                pg.click("#ddim-run")
                pg.evaluate("explorer.settled()")
                rows["ddim20"].append(pg.evaluate("explorer.state.timing.ddim_painted_ms"))
            pg.close()
        browser.close()
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--page", type=Path, default=None, help="an explorer.html already written for RUN_DIR")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    page = args.page
    if page is None or not page.is_file():
        from connlab.explore import write_explorer

        page = write_explorer(args.run_dir, page or Path(tempfile.mkdtemp()) / "explorer.html")
    rows = measure(page, args.repeat)
    result = {"page": str(page), "page_mb": round(page.stat().st_size / 1e6, 2), "rounds": args.repeat, "rows": {}}
    print(f"page {page} ({result['page_mb']} MB), {args.repeat} rounds, headless Chromium")
    for name, values in rows.items():
        if not values:
            print(f"{name:15s} (no such part in the page)")
            continue
        median = statistics.median(values)
        ratio = median / TARGETS_MS[name]
        result["rows"][name] = {"median_ms": round(median, 1), "rounds_ms": [round(v, 1) for v in values],
                                "target_ms": TARGETS_MS[name], "ratio": round(ratio, 3)}
        print(f"{name:15s} {median:8.1f} ms (rounds {', '.join(f'{v:.0f}' for v in values)}); "
              f"target {TARGETS_MS[name]:.0f} ms; ratio {ratio:.2f}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
