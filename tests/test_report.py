"""The report page, ``connlab report`` and ``connlab demo``'s bookkeeping (the notebooks: test_notebooks.py).

Tiny real runs (gates, rnn) plus hand-written run folders with golden numbers feed the page;
headless Chromium (Debian's ``chromium``) opens it as a person would:

- every ``<img>`` decoded (``naturalWidth > 0``), read back from the page's own inline
  self-check, which writes its findings into the DOM that ``--dump-dom`` prints;
- no console output at all (Chromium's ``--enable-logging=stderr`` prints every console
  message as a ``CONSOLE`` line) and no error event inside the page;
- no request leaves the machine: statically, no ``http(s)://`` in any ``src``/``href``/``url()``;
  dynamically, Chromium is pointed at a recording proxy on 127.0.0.1 (so a request could not
  leave even if the page made one) and the proxy must see nothing; the page's Resource Timing
  entries must list nothing but ``data:`` URIs.

``test_browser_checks_catch_a_bad_page`` shows each of those checks failing on a page with a
broken image, an external image and a ``console.error``.
"""

from __future__ import annotations

import base64
import json
import re
import socketserver
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from connlab import cli

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[1]


def connlab(*argv) -> int:
    """``connlab ARGV`` in this process."""
    return cli.main([str(a) for a in argv])


# --- run folders -----------------------------------------------------------------------------

def _png(path: Path, colour=(0.2, 0.4, 0.8)) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(2, 1.5))
    ax.plot([0, 1, 2], [0, 1, 0], color=colour)
    fig.savefig(path, dpi=50)
    plt.close(fig)


def fake_run(folder: Path, experiment: str, summary: dict | None, figures=("figure.png",)) -> Path:
    """A run folder as an experiment writes it: config.json, summary.json, figures."""
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"experiment": experiment, "config": {}}))
    if summary is not None:
        (folder / "summary.json").write_text(json.dumps(summary))
    for name in figures:
        _png(folder / name)
    return folder


def autoencoder_summary(none_bce, none_std, concat_bce, concat_std, seeds=3, psnr_gain=0.0, evidence=False,
                        psnr=20.0) -> dict:
    """A folder as ``connlab autoencoder`` writes it; ``evidence``: with the per-seed comparisons stored
    (seed i's BCE = mean + std × wobble[i]; PSNR ``psnr`` dB for none, + ``psnr_gain`` for concat)."""
    wobble = [-1.0, 0.2, 0.8, -0.4, 0.4][:seeds]

    def variant(bce, std, psnr=psnr):
        return {"params": 1000, "test_bce": bce, "test_bce_std": std, "test_psnr": psnr, "test_psnr_std": 0.1,
                "test_ssim": 0.8, "test_ssim_std": 0.01, "train_seconds": 10.0,
                "seeds": [{"seed": i, "test_bce": bce + std * w, "test_psnr": psnr + 0.1 * w}
                          for i, w in enumerate(wobble)]}

    variants = {"none": variant(none_bce, none_std), "concat": variant(concat_bce, concat_std, psnr + psnr_gain)}
    if evidence:
        from connlab.experiments.autoencoder_measures import skip_evidence

        extra = {"evidence": skip_evidence(variants)}
    else:
        extra = {}

    return {"experiment": "autoencoder", "dataset": "mnist-embedded", "data_source": "embedded", "device": "cpu",
            "test_images": 1000, "noise": 0.5, "noise_dist": "norm", "epochs": 3, "seeds": seeds,
            "variants": variants, **extra,
            "baselines": {"noisy_input": {"bce": 3.6, "psnr": 9.4, "ssim": 0.2},
                          "mean_image": {"bce": 0.27, "psnr": 11.9, "ssim": 0.34}},
            "iterate": {"none": [{"pass": 1, "bce": 0.10, "psnr": 15.0}, {"pass": 2, "bce": 0.12, "psnr": 14.0}],
                        "clean_mean_intensity": 0.13}}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """Two tiny real runs (gates, rnn) and hand-written autoencoder / diffusion / vit folders."""
    root = tmp_path_factory.mktemp("runs")
    assert connlab("gates", "--epochs", 2, "--train-points", 400, "--device", "cpu", "--out", root / "gates") == 0
    assert connlab("rnn", "--lengths", "4,8", "--models", "rnn,gru", "--train-size", 128, "--test-size", 64,
                   "--epochs", 1, "--device", "cpu", "--out", root / "rnn") == 0
    fake_run(root / "autoencoder", "autoencoder", autoencoder_summary(0.110, 0.001, 0.090, 0.002),
             ("reconstructions.png", "loss_curves.png"))
    fake_run(root / "diffusion", "diffusion",
             {"experiment": "diffusion", "device": "cpu", "frechet_floor": 4.0,
              "quality": {"frechet_distance": 40.0, "mean_confidence": 0.9, "confident_fraction": 0.8,
                          "classes_covered": 10, "num_samples": 500, "steps": 50}},
             ("samples.png", "trajectory.png"))
    fake_run(root / "vit", "vit", {"experiment": "vit", "test_accuracy": 0.5}, ("attention_maps.png",))
    return root


def _page_text(path: Path) -> str:
    return Path(path).read_text(encoding="utf-8")


# --- the page --------------------------------------------------------------------------------

def test_report_is_one_self_contained_page_in_the_lectures_order(runs, tmp_path):
    out = tmp_path / "report.html"
    assert connlab("report", runs / "vit", runs / "autoencoder", runs / "diffusion", runs / "rnn", runs / "gates",
                   "--out", out) == 0
    page = _page_text(out)
    ids = re.findall(r'<h2 id="([a-z]+)"', page)
    assert ids == ["gates", "rnn", "autoencoder", "diffusion", "vit", "environment"]
    srcs = re.findall(r'<img[^>]* src="([^"]*)"', page)
    assert len(srcs) == 3 + 2 + 2 + 2 + 1  # gates' 3, rnn's 2, and the hand-made figures
    for src in srcs:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert not external_references(page)
    for needle in ("torch", "python", "device(s) of the runs", "embedded"):
        assert needle in page


def test_verdicts_are_computed_from_the_numbers(runs, tmp_path):
    connlab("report", runs / "autoencoder", runs / "diffusion", runs / "vit", "--out", tmp_path / "r.html")
    page = _page_text(tmp_path / "r.html")
    # a folder written before the comparisons were stored: no verdict invented from the old numbers
    assert "not measured with intervals — rerun" in page
    assert "Fréchet distance 40.0 vs the real-data floor 4.0 (10× the floor)" in page
    assert "test accuracy 50.00% is below the target 95%" in page
    assert "skip = none: PSNR 15.00 → 14.00 dB over 2 passes: no answer" in page


@pytest.mark.parametrize("numbers, psnr, psnr_gain, verdict", [
    ((0.110, 0.001, 0.090, 0.002), 20.0, 2.0, "supported"),
    ((0.110, 0.001, 0.090, 0.002), 20.0, 0.0, "not supported at this budget"),   # BCE better, PSNR the same
    ((0.090, 0.001, 0.110, 0.002), 20.0, 2.0, "contradicted"),                   # BCE measurably worse
    ((0.300, 0.001, 0.290, 0.002), 10.0, 1.0, "inconclusive: the models did not learn at this budget"),  # < mean image
])
def test_autoencoder_verdict(numbers, psnr, psnr_gain, verdict, tmp_path):
    from connlab.report import build_section, load_run

    run = fake_run(tmp_path / "ae", "autoencoder", autoencoder_summary(*numbers, seeds=5, psnr=psnr,
                                                                     psnr_gain=psnr_gain, evidence=True))
    assert build_section(load_run(run)).verdict == verdict


def test_missing_numbers_read_as_not_measured(tmp_path):
    """Summaries whose keys moved give 'not measured' from every builder. A builder that crashes on
    them fails this test: the report does not catch a builder's exception (test_registry.py shows it)."""
    from connlab.report import NOT_MEASURED, build_report

    folders = [fake_run(tmp_path / name, name, {"experiment": name, "renamed_key": 1})
               for name in ("gates", "rnn", "skipmlp", "autoencoder", "depth", "ladder", "diffusion", "vit",
                            "attention")]
    folders.append(fake_run(tmp_path / "unfinished", "depth", None))
    page = _page_text(build_report(folders, tmp_path / "r.html"))
    assert page.count(f"<b>{NOT_MEASURED}</b>") == len(folders)
    assert "did not finish" in page


@pytest.mark.parametrize("case", ["missing", "no-config", "no-experiment"])
def test_report_bad_input_is_one_line_and_exit_2(case, tmp_path, capsys):
    target = tmp_path / "run"
    if case != "missing":
        target.mkdir()
    if case == "no-experiment":
        (target / "config.json").write_text("{}")
    assert connlab("report", target, "--out", tmp_path / "r.html") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(target) in err
    assert not (tmp_path / "r.html").exists()


# --- headless Chromium -----------------------------------------------------------------------

def external_references(page: str) -> list[str]:
    """Every http(s)/protocol-relative URL in a src, href, srcset, action or CSS url()."""
    attrs = re.findall(r'(?:src|href|srcset|action|poster|data)\s*=\s*["\']?\s*((?:https?:)?//[^"\'\s>]+)', page, re.I)
    css = re.findall(r'url\(\s*["\']?((?:https?:)?//[^"\')]+)', page, re.I)
    imports = re.findall(r'@import\s+["\']((?:https?:)?//[^"\']+)', page, re.I)
    return attrs + css + imports


class _RecordingProxy(socketserver.ThreadingTCPServer):
    """An HTTP proxy on 127.0.0.1 that records each request line and answers 403: nothing goes out."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self):
        self.requests: list[str] = []
        proxy = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self):
                line = self.rfile.readline(4096).decode("latin-1").strip()
                if line:
                    proxy.requests.append(line)
                self.wfile.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")

        super().__init__(("127.0.0.1", 0), Handler)


def open_in_chromium(page: Path, profile: Path, screenshot: Path | None = None) -> dict:
    """Load ``page`` in headless Chromium; what the page, the browser and the proxy saw."""
    proxy = _RecordingProxy()
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    base = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            f"--user-data-dir={profile}", "--no-first-run", "--no-default-browser-check", "--disable-extensions",
            "--disable-component-update", "--disable-sync", "--disable-default-apps", "--no-pings",
            "--disable-domain-reliability", "--disable-client-side-phishing-detection", "--disable-breakpad",
            "--disable-features=OptimizationHints,MediaRouter,Translate,AutofillServerCommunication,"
            "CertificateTransparencyComponentUpdater,NetworkTimeServiceQuerying,SigninInterceptBubble",
            "--metrics-recording-only", "--safebrowsing-disable-auto-update", "--enable-logging=stderr", "--v=0",
            f"--proxy-server=http://127.0.0.1:{proxy.server_address[1]}", "--proxy-bypass-list=<-loopback>",
            "--virtual-time-budget=10000"]
    try:
        dom = subprocess.run(base + ["--dump-dom", page.resolve().as_uri()], capture_output=True, text=True,
                             timeout=120)
        shot = None
        if screenshot is not None:
            shot = subprocess.run(base + [f"--screenshot={screenshot}", "--window-size=1200,3000",
                                          "--hide-scrollbars", page.resolve().as_uri()],
                                  capture_output=True, text=True, timeout=120)
    finally:
        proxy.shutdown()
        proxy.server_close()
    match = re.search(r'<pre id="self-check"[^>]*>(.*?)</pre>', dom.stdout, re.S)
    import html

    check = json.loads(html.unescape(match.group(1))) if match and match.group(1).strip() else None
    stderr = dom.stderr + (shot.stderr if shot else "")
    return {"returncode": dom.returncode, "self_check": check, "proxy_requests": list(proxy.requests),
            "console": [line for line in stderr.splitlines() if ":CONSOLE" in line]}


# Chromium's own services, which it contacts even with --disable-background-networking (seen:
# update.googleapis.com, accounts.google.com). They reach the recording proxy and stop there; only
# requests to any *other* host count as the page's. The page's own requests are also read back
# from its Resource Timing entries, which Chromium's services never appear in.
BROWSER_SERVICE_HOSTS = {"update.googleapis.com", "accounts.google.com", "clients2.google.com",
                         "clientservices.googleapis.com", "optimizationguide-pa.googleapis.com",
                         "safebrowsingohttpgateway.googleapis.com", "content-autofill.googleapis.com",
                         "redirector.gvt1.com", "edgedl.me.gvt1.com", "www.google.com"}


def page_requests(proxy_requests: list[str]) -> list[str]:
    """The proxied requests whose host is not one of Chromium's own services."""
    hosts = []
    for line in proxy_requests:
        target = line.split()[1] if len(line.split()) > 1 else line
        host = re.sub(r"^[a-z]+://", "", target).split("/")[0].split(":")[0]
        if host not in BROWSER_SERVICE_HOSTS:
            hosts.append(line)
    return hosts


needs_chromium = pytest.mark.skipif(not CHROMIUM.exists(),
                                    reason="needs Debian's chromium at /usr/bin/chromium (apt-get install chromium)")


@needs_chromium
def test_report_in_headless_chromium(runs, tmp_path):
    page = runs / "report.html"
    assert connlab("report", *(runs / n for n in ("gates", "rnn", "autoencoder", "diffusion", "vit")),
                   "--out", page) == 0
    shot = runs / "report_screenshot.png"
    seen = open_in_chromium(page, tmp_path / "profile", screenshot=shot)
    assert seen["returncode"] == 0
    check = seen["self_check"]
    assert check is not None, "the page's self-check did not run"
    assert check["images"] == 10 and check["not_loaded"] == []
    assert check["errors"] == [] and seen["console"] == []
    assert check["requests"] == [] and page_requests(seen["proxy_requests"]) == []
    assert not external_references(_page_text(page))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000


@needs_chromium
def test_browser_checks_catch_a_bad_page(runs, tmp_path):
    """The checks above can fail: a broken image, an external image and a console error are all caught."""
    good = runs / "bad-source.html"
    connlab("report", runs / "gates", "--out", good)
    page = _page_text(good).replace(
        "</body>", '<img alt="broken" src="data:image/png;base64,AAAA">'
                   '<img alt="external" src="http://example.invalid/x.png">'
                   '<script>console.error("boom")</script></body>')
    bad = tmp_path / "bad.html"
    bad.write_text(page, encoding="utf-8")
    seen = open_in_chromium(bad, tmp_path / "profile")
    check = seen["self_check"]
    assert set(check["not_loaded"]) == {"broken", "external"}
    assert "boom" in check["errors"] and any("boom" in line for line in seen["console"])
    assert check["requests"] == ["http://example.invalid/x.png"]
    assert any("example.invalid" in r for r in page_requests(seen["proxy_requests"]))
    assert external_references(page) == ["http://example.invalid/x.png"]


# --- connlab demo: bookkeeping and resume ------------------------------------------------------

def test_demo_plan_runs_every_experiment_in_the_lectures_order():
    from connlab.demo import plan

    for full in (False, True):
        names = [p.name for p in plan(full, "mnist-embedded", None, "cpu")]
        assert names == ["gates", "rnn", "skipmlp", "autoencoder", "autoencoder course", "depth", "ladder",
                         "diffusion train",
                         "diffusion sample", "diffusion eval", "vit", "attention", "attention course"]
    cpu = {p.name: p.argv for p in plan(False, "mnist-embedded", None, "cpu")}
    assert "--iterate" in cpu["autoencoder"] and "all" in cpu["autoencoder"]
    assert cpu["diffusion train"][:4] == ("diffusion", "train", "--preset", "demo")
    for name in ("autoencoder", "ladder", "depth", "skipmlp", "vit", "diffusion train"):
        assert cpu[name][cpu[name].index("--dataset") + 1] == "mnist-embedded"


@pytest.mark.parametrize("full", [False, True])
def test_demo_command_lines_parse(full, tmp_path):
    """Every part's flags are accepted by its command (argparse only; nothing runs)."""
    from connlab.demo import command_line, plan

    for part in plan(full, "mnist", None, "cpu"):
        argv = command_line(part, tmp_path)
        args = cli.build_parser(argv).parse_args(argv)
        assert callable(args.run), part.name


def test_demo_resume_passes_resume_only_to_a_started_part(tmp_path):
    from connlab.demo import Part, _done, command_line

    part = Part("depth", "depth", ("depth", "--epochs", "1"))
    assert command_line(part, tmp_path)[-2:] == ["--out", str(tmp_path / "depth")]
    (tmp_path / "depth" / "variants" / "plain-d2" / "checkpoints").mkdir(parents=True)
    (tmp_path / "depth" / "config.json").write_text("{}")
    assert command_line(part, tmp_path)[-1] == "--resume"
    assert not _done(part, tmp_path / "depth")
    (tmp_path / "depth" / "summary.json").write_text("{}")
    assert _done(part, tmp_path / "depth")
    # started but stopped before its first checkpoint: started afresh
    (tmp_path / "rnn").mkdir()
    (tmp_path / "rnn" / "config.json").write_text("{}")
    assert command_line(Part("rnn", "rnn", ("rnn",)), tmp_path)[-1] != "--resume"
    assert not (tmp_path / "rnn").exists()


def test_demo_only_resume_and_refusal(tmp_path, capsys, monkeypatch):
    from dataclasses import replace

    from connlab.experiments import REGISTRY, DemoStep

    tiny = DemoStep(("--epochs", "2", "--train-points", "400"), ())
    monkeypatch.setitem(REGISTRY, "gates", replace(REGISTRY["gates"], demo=(tiny,)))
    out = tmp_path / "demo"
    # --resume on a fresh folder starts the demo (the Makefile always passes it)
    assert connlab("demo", "--out", out, "--only", "gates", "--device", "cpu", "--resume") == 0
    assert "holds no demo yet; starting one" in capsys.readouterr().err
    record = json.loads((out / "demo.json").read_text())
    assert [p["name"] for p in record["parts"]] == ["gates"] and record["parts"][0]["status"] == "done"
    assert record["parts"][0]["seconds"] > 0 and "torch" in record["environment"]
    assert (out / "report.html").is_file() and (out / "gates" / "summary.json").is_file()
    capsys.readouterr()
    assert connlab("demo", "--out", out, "--only", "gates") == 2          # a demo is already there
    assert capsys.readouterr().err.count("\n") == 1
    assert connlab("demo", "--out", out, "--only", "gates", "--resume") == 0  # finished: skipped
    assert "already finished, skipped" in capsys.readouterr().err
    assert connlab("report", out, "--out", tmp_path / "again.html") == 0     # a demo folder stands for its runs
    assert 'id="gates"' in _page_text(tmp_path / "again.html")



def test_summary_table_shows_each_verdict_with_its_effect_and_rule(tmp_path):
    """Verdicts from connlab.evidence, their effect [95 % CI] and n in the summary, the rule beside each;
    a contradicted claim renders, and a folder written before the intervals existed asks for a rerun."""
    import torch

    from connlab.experiments.ladder_chain import evidence_dict
    from connlab.measures import attention_on_strokes

    digits = torch.randn(200, generator=torch.Generator().manual_seed(0)) * 0.5
    walks_away = evidence_dict(torch.tensor([9.0, 7.0, 5.0])[:, None] + digits[None], 2)
    ladder = fake_run(tmp_path / "ladder", "ladder",
                      {"experiment": "ladder", "chain_psnr": walks_away["mean_psnr"], "variants": {},
                       "evidence": {"trained": walks_away}}, ("chain.png",))
    ratios = attention_on_strokes(torch.full((1000,), 1.6) + 0.1 * torch.randn(1000), threshold=1.1)
    vit = fake_run(tmp_path / "vit", "vit", {"experiment": "vit", "test_accuracy": 0.97,
                                             "attention_ink_ratio": {"mean": 1.6, "evidence": ratios.as_dict()}},
                   ("attention_maps.png",))
    old_vit = fake_run(tmp_path / "old" / "vit", "vit", {"experiment": "vit", "test_accuracy": 0.97},
                       ("attention_maps.png",))
    out = tmp_path / "r.html"
    assert connlab("report", ladder, vit, "--out", out) == 0
    page = _page_text(out)
    summary = page.split('<table class="summary">', 1)[1].split("</table>", 1)[0]
    assert "<th>effect [95 % CI], n</th>" in summary
    assert '<td class="not">contradicted</td>' in summary      # the ladder chain walks away from the digit
    assert '<td class="supported">supported</td>' in summary
    assert "PSNR gain effect −4.00 dB" in summary and "n = 200" in summary and "n = 1000" in summary
    assert page.count('<p class="rule">rule: ') == 2
    assert connlab("report", old_vit, "--out", tmp_path / "old.html") == 0
    old = _page_text(tmp_path / "old.html")
    assert "not measured with intervals — rerun" in old and '<td class="unknown">not measured</td>' in old


# --- the page as a student reads it: the plain sentence first, on a phone too ----------------------

def _sentence_runs(root: Path) -> list[Path]:
    """Folders of several claim kinds: supported, an old folder (not measured), a partly supported one."""
    ae = fake_run(root / "autoencoder", "autoencoder",
                  autoencoder_summary(0.110, 0.001, 0.090, 0.002, seeds=5, psnr_gain=3.3, evidence=True),
                  ("reconstructions.png", "loss_curves.png"))
    old = fake_run(root / "old-autoencoder", "autoencoder", autoencoder_summary(0.110, 0.001, 0.090, 0.002),
                   ("reconstructions.png",))
    diffusion = fake_run(root / "diffusion", "diffusion",
                         {"experiment": "diffusion", "device": "cpu", "frechet_floor": 4.0,
                          "quality": {"frechet_distance": 40.0, "mean_confidence": 0.9, "confident_fraction": 0.8,
                                      "classes_covered": 10, "num_samples": 500, "steps": 50}},
                         ("samples.png", "trajectory.png"))
    vit = fake_run(root / "vit", "vit", {"experiment": "vit", "test_accuracy": 0.5}, ("attention_maps.png",))
    return [ae, old, diffusion, vit]


def test_each_verdict_opens_with_its_sentence_and_keeps_the_rule_in_details(tmp_path):
    from connlab.report import build_report

    page = _page_text(build_report(_sentence_runs(tmp_path), tmp_path / "r.html"))
    boxes = re.findall(r'<div class="verdict [a-z]+">(.*?)</div>', page, re.S)
    assert len(boxes) == 4
    for box in boxes:
        first, rest = box.split("</p>", 1)
        assert first.startswith('<p class="sentence">') and "rule:" not in first and "compare(" not in first
        assert rest.startswith("<details><summary>") and rest.rstrip().endswith("</details>")
    # every verdict's rule sits inside its box's <details>
    assert page.count('<p class="rule">') == sum(box.count('<p class="rule">rule: ') for box in boxes) == 4
    # the autoencoder's sentence states its stored numbers
    ev = autoencoder_summary(0.110, 0.001, 0.090, 0.002, seeds=5, psnr_gain=3.3, evidence=True)
    psnr = ev["evidence"]["concat"]["psnr"]
    assert f"{psnr['effect']:.2f} dB sharper (95 % interval {psnr['low']:.2f} to {psnr['high']:.2f} dB, 5 seeds)" \
        in boxes[0] and "supported.</p>" in boxes[0]
    # figures carry a caption sentence, not a bare file name
    captions = re.findall(r"<figcaption>(.*?)</figcaption>", page, re.S)
    assert captions and all(re.match(r"[A-Z].*\. <span", c) for c in captions)


@needs_chromium
def test_report_on_a_phone_has_no_horizontal_overflow_and_the_sentence_comes_first(browser, tmp_path):
    """At 390×844 (a phone) nothing makes the page scroll sideways, and each verdict box's first visible
    text is its plain sentence (the rule is folded away until opened)."""
    from connlab.report import build_report

    page_path = build_report(_sentence_runs(tmp_path), tmp_path / "r.html")
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    try:
        page = context.new_page()
        errors = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.route("http*://**", lambda route: route.abort())
        page.goto(page_path.resolve().as_uri())
        page.wait_for_function("document.body.getAttribute('data-images-ok') !== null")
        assert page.evaluate("document.scrollingElement.scrollWidth <= window.innerWidth"), \
            page.evaluate("[document.scrollingElement.scrollWidth, window.innerWidth]")
        boxes = page.locator("div.verdict")
        assert boxes.count() == 4
        for i in range(boxes.count()):
            box = boxes.nth(i)
            first_line = box.inner_text().strip().splitlines()[0]
            assert first_line == box.locator("p.sentence").inner_text().strip()
            assert not first_line.lower().startswith("rule") and "compare(" not in first_line
            rule = box.locator("p.rule")
            if rule.count():
                assert not rule.is_visible()
                box.locator("summary").click()
                assert rule.is_visible()
        assert errors == []
    finally:
        context.close()


def test_two_sections_of_one_experiment_get_their_own_anchors(tmp_path):
    """The lab's run and the course's (autoencoder, autoencoder-course) are linked apart from the summary."""
    from connlab.experiments.section import Section
    from connlab.report.page import anchors, render

    secs = [Section("autoencoder", "the lab's", "", "supported", ""),
            Section("autoencoder", "the course's", "", "supported", ""),
            Section("attention", "the sequence task", "", "supported", "")]
    secs[0].folder, secs[1].folder, secs[2].folder = tmp_path / "autoencoder", tmp_path / "autoencoder-course", None
    assert anchors(secs) == ["autoencoder", "autoencoder-course", "attention"]
    page = render(secs, None, {})
    for anchor in ("autoencoder", "autoencoder-course", "attention"):
        assert page.count(f'id="{anchor}"') == 1 and page.count(f'href="#{anchor}"') == 1
    secs[0].folder = tmp_path / "elsewhere" / "autoencoder-course"   # same folder names: a number tells them apart
    assert anchors(secs) == ["autoencoder-course", "autoencoder-course-2", "attention"]
