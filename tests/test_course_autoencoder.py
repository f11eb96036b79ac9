"""The course's Exercise 1: its network (bottleneck, Keras init), and the "course vs ours" rows."""

import math

import pytest
import torch

from connlab.evidence import compare, reproduction
from connlab.experiments.section import (REPRODUCTION_HEADER, comparison_settles, reproduction_row,
                                         reproduction_settles)
from connlab.models.autoencoder import (COURSE_BOTTLENECK, AutoencoderConfig, DenoisingAutoencoder,
                                        count_parameters, sequential_autoencoder)


@pytest.mark.parametrize("skip, upsample, params", [
    ("none", "nearest", 185_873),      # the course's exercise notebook's model.summary()
    ("concat", "nearest", 260_177),    # the course's solution: both concatenation skips
    ("add", "nearest", 185_873),
    # Conv2DTranspose(128, kernel 2, stride 2) — the solution's "another option" — adds 128·128·4 + 128 weights
    # over UpSampling2D, and the second one 64·64·4 + 64
    ("none", "transpose", 185_873 + 65_664 + 16_448),
    ("concat", "transpose", 260_177 + 65_664 + 16_448),
])
def test_the_course_network_has_the_course_parameter_counts(skip, upsample, params):
    model = DenoisingAutoencoder(AutoencoderConfig(skip, upsample, bottleneck=COURSE_BOTTLENECK))
    assert count_parameters(model) == params
    assert model(torch.rand(2, 1, 28, 28)).shape == (2, 1, 28, 28)
    # the bottleneck is a 16-filter 3x3 conv at 7x7
    assert model.bottleneck.conv.weight.shape == (16, 128, 3, 3)


@pytest.mark.parametrize("upsample", ["nearest", "transpose"])
def test_sequential_equals_functional_with_the_bottleneck(upsample):
    functional = DenoisingAutoencoder(AutoencoderConfig("none", upsample, bottleneck=16))
    sequential = sequential_autoencoder(upsample, bottleneck=16)
    with torch.no_grad():
        for dst, src in zip(sequential.parameters(), functional.parameters(), strict=True):
            dst.copy_(src)
    x = torch.rand(3, 1, 28, 28)
    assert torch.allclose(sequential(x), functional(x), atol=1e-6)


def test_keras_init_is_glorot_uniform_with_zero_biases_and_seeded():
    torch.manual_seed(0)
    keras = DenoisingAutoencoder(AutoencoderConfig("concat", bottleneck=16, init="keras"))
    torch.manual_seed(0)
    again = DenoisingAutoencoder(AutoencoderConfig("concat", bottleneck=16, init="keras"))
    torch.manual_seed(0)
    default = DenoisingAutoencoder(AutoencoderConfig("concat", bottleneck=16))
    convs = [m for m in keras.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 6
    for conv in convs:
        fan_in = conv.in_channels * 9
        fan_out = conv.out_channels * 9
        bound = math.sqrt(6 / (fan_in + fan_out))
        w = conv.weight
        assert w.abs().max() <= bound and w.abs().max() > 0.9 * bound   # fills Glorot's range
        assert torch.count_nonzero(conv.bias) == 0
    assert all(torch.equal(a, b) for a, b in zip(keras.parameters(), again.parameters()))
    # PyTorch's default draws uniform biases: the two inits differ
    assert any(torch.count_nonzero(m.bias) for m in default.modules() if isinstance(m, torch.nn.Conv2d))
    with pytest.raises(ValueError, match="init 'xavier'"):
        AutoencoderConfig(init="xavier")
    with pytest.raises(ValueError, match="bottleneck"):
        AutoencoderConfig(bottleneck=-1)


def test_reproduction_row_shows_course_mean_interval_n_verdict_and_gap():
    inside = reproduction(0.1652, [0.1640, 0.1660, 0.1650, 0.1670, 0.1630])
    row = reproduction_row("skip = none", inside.as_dict())
    assert len(row) == len(REPRODUCTION_HEADER)
    assert row[:3] == ["skip = none", "0.1652", "0.1650"]
    assert row[3] == f"{inside.low:.4f} to {inside.high:.4f}" and row[4] == "5"
    assert row[5] == "reproduced" and row[6] == "inside"
    outside = reproduction(0.1447, [0.1300, 0.1310, 0.1305, 0.1295, 0.1290])
    row = reproduction_row("skip = concat", outside)
    assert row[5] == "not reproduced" and row[6].endswith("above the interval")
    assert float(row[6].split()[0]) == pytest.approx(0.1447 - outside.high, abs=1e-4)
    assert reproduction_row("x", None)[1] == "not measured"             # an old run folder
    one = reproduction_row("x", reproduction(0.1652, [0.16]))
    assert one[3] == "no interval (n = 1)" and one[5] == "not reproduced"


def test_what_n_would_settle_it():
    far = reproduction(0.1447, [0.1300, 0.1340, 0.1320])   # 3 seeds: wide interval, far course figure
    text = reproduction_settles(far.as_dict())
    assert "settled at n = 3" in text or "would make it not reproduced" in text
    near = reproduction(0.1650, [0.1640, 0.1660, 0.1655])
    assert "stays inside" in reproduction_settles(near)
    assert "--seeds 5" in reproduction_settles(reproduction(0.1652, [0.16]))
    weak = compare([1.0, 1.1, 0.9], [0.95, 1.08, 0.86]).as_dict()   # effect −0.037, not settled by 3 pairs
    text = comparison_settles(weak)
    assert text.startswith("not settled at n = 3") and "would settle it" in text
    strong = compare([1.0, 1.1, 0.9, 1.05, 0.95], [0.5, 0.6, 0.4, 0.55, 0.45]).as_dict()
    assert comparison_settles(strong) == "settled at n = 5"


# --- `connlab autoencoder --preset course` -------------------------------------------------------------

def course_config(*flags):
    from connlab.cli import build_parser
    from connlab.experiments.autoencoder import AutoencoderExperiment

    argv = ["autoencoder", "--preset", "course", *flags]
    return AutoencoderExperiment.from_args(build_parser(argv).parse_args(argv))


def test_the_course_preset_fills_only_the_flags_not_given():
    cfg = course_config()
    assert (cfg.bottleneck, cfg.init, cfg.noise_dist, cfg.noise, cfg.noise_draw, cfg.dataset) == (
        16, "keras", "salt-pepper", 1.0, "once", "course")
    assert (cfg.epochs, cfg.batch_size, cfg.lr, cfg.patience) == (20, 128, 1e-3, 5)
    assert cfg.variants == ("none", "concat")          # the course's comparison
    assert cfg.course_deviations() == {}
    given = course_config("--epochs", "3", "--init", "torch", "--upsample", "transpose")
    assert (given.epochs, given.init, given.upsample, given.bottleneck) == (3, "torch", "transpose", 16)
    assert given.course_deviations() == {"epochs": (3, 20), "init": ("torch", "keras"),
                                         "upsample": ("transpose", "nearest")}
    assert course_config("--skip", "add").variants == ("add",)


def test_course_noise_is_drawn_once_the_same_noisy_set_every_epoch(monkeypatch, tmp_path):
    """The training data handed to the loop is one noisy copy (per seed), and the loss never draws noise."""
    import connlab.experiments.autoencoder as autoencoder
    from connlab.data.noise import salt_and_pepper
    from connlab.experiments.autoencoder import run_experiment

    seen = []

    class Captured(Exception):
        pass

    def capture(cfg, out, name, build, loss_fn, data, device, **kwargs):
        from types import SimpleNamespace

        model = build()
        seen.append((name, loss_fn, data, model, kwargs))
        if len(seen) == 2:
            raise Captured
        return model, SimpleNamespace(train_seconds=0.0, train_images_per_second=0.0, epochs=0, stopped_epoch=None,
                                      history=[])

    monkeypatch.setattr(autoencoder, "train_variant", capture)
    monkeypatch.setattr(autoencoder, "over_seeds", lambda names, seeds, one: [one("none", s) for s in seeds])
    cfg = course_config("--limit", "64", "--validation-images", "32", "--seeds", "2", "--device", "cpu")
    with pytest.raises(Captured):
        run_experiment(cfg, tmp_path)
    (name0, loss_fn, (noisy0, clean0), model, kwargs), (_, _, (noisy1, clean1), _, _) = seen[:2]
    assert torch.equal(clean0, clean1) and clean0.shape == (64, 1, 28, 28)
    assert not torch.equal(noisy0, noisy1)                     # each seed its own draw ...
    changed = noisy0 != clean0
    assert torch.all((noisy0[changed] == 0) | (noisy0[changed] == 1))   # ... of salt and pepper
    assert 0.2 < changed.float().mean() < 0.45   # salt on the background, pepper on the strokes
    g = torch.Generator().manual_seed(977 * 1_000_003 + 0)
    assert torch.equal(noisy0, salt_and_pepper(clean0, g))     # the course's noise, from a seeded generator
    batch = (noisy0[:8], clean0[:8])
    first = loss_fn(model, batch, torch.Generator().manual_seed(1))
    again = loss_fn(model, batch, torch.Generator().manual_seed(2))
    assert torch.equal(first, again)                           # nothing is redrawn inside a step
    assert kwargs["early_stopping"].monitor == "val_bce" and kwargs["early_stopping"].patience == 5


@pytest.mark.slow   # 4 tiny models plus 96-digit validation: about a minute on 2 cores
def test_course_run_folder_summary_contract_and_section(tmp_path, capsys):
    from connlab.cli import main
    from connlab.experiments.autoencoder import section
    from connlab.experiments.section import load_run

    out = tmp_path / "course"
    assert main(["autoencoder", "--preset", "course", "--skip", "all", "--epochs", "2", "--limit", "64",
                 "--batch-size", "32", "--validation-images", "96", "--monitor-images", "48", "--seeds", "2",
                 "--iterate", "2", "--device", "cpu", "--out", str(out)]) == 0
    import json

    summary = json.loads((out / "summary.json").read_text())
    assert summary["protocol"] == "course" and summary["validation"] in ("mnist-test", "embedded-rest")
    assert {v: summary["variants"][v]["params"] for v in summary["variants"]} == {"none": 185_873,
                                                                                  "concat": 260_177}
    for v in ("none", "concat"):
        seeds = summary["variants"][v]["seeds"]
        assert len(seeds) == 2 and all(0 < r["test_bce"] < 1 for r in seeds)   # BCE on all 96 validation digits
    reps = summary["course"]["reproduction"]
    assert [r["published"] for r in reps["none"]] == [0.1652, 0.1594, 0.1620]
    assert reps["concat"][0]["published"] == 0.1447 and reps["concat"][0]["n"] == 2
    assert summary["course"]["deviations"]["epochs"] == {"ours": 2, "course": 20}
    line = json.loads((out / "variants" / "none-seed1" / "metrics.jsonl").read_text().splitlines()[-1])
    assert "val_bce" in line                                   # every seed is watched (early stopping)
    sec = section(load_run(out))
    assert sec.experiment == "autoencoder-course"
    rows = sec.tables[0].rows
    assert rows[0][1] == "0.1652" and rows[-1][1] == "0.1447"
    assert all(r[5] in ("reproduced", "not reproduced") for r in rows)
    assert "NOT the course's protocol: epochs 2 (course: 20)" in sec.tables[0].caption
    assert sec.tables[1].rows[0][0] == "course protocol (this run)"
    assert sec.verdict in ("supported", "not supported at this budget", "contradicted")


def test_course_section_renders_a_folder_without_the_course_numbers(tmp_path):
    from connlab.experiments.autoencoder import section
    from connlab.experiments.section import Run

    sec = section(Run(tmp_path, "autoencoder", {"preset": "course"}, {"protocol": "course", "seeds": 1}))
    assert sec.verdict == "not measured" and sec.tables[0].rows == []
    old = section(Run(tmp_path, "autoencoder", {}, {"variants": {}, "seeds": 1}))   # a lab folder from before
    assert old.experiment == "autoencoder"


def test_make_demo_shows_the_course_rows_and_demo_preset_course_plans_every_protocol(monkeypatch):
    from connlab.errors import UserError
    from connlab.experiments import REGISTRY
    from connlab.demo import plan
    from connlab.experiments.registry import COURSE_DEMO

    part = next(p for p in plan(False, "mnist-embedded", "/data", "cpu") if p.name == "autoencoder course")
    assert part.folder == "autoencoder-course"
    assert part.argv[:4] == ("autoencoder", "--preset", "course", "--skip")
    assert "--dataset" not in part.argv and part.argv[part.argv.index("--data-dir") + 1] == "/data"
    assert [c for c, _ in COURSE_DEMO] == ["autoencoder", "depth", "ladder", "attention"]
    assert all(s.cpu[-2:] == ("--seeds", "5") and s.cpu[:2] == ("--preset", "course") for _, s in COURSE_DEMO)
    without = [c for c, _ in COURSE_DEMO if "course" not in getattr(REGISTRY[c].config_class, "PRESETS", {})]
    if without:   # until the other course branches merge: a clear refusal naming them
        with pytest.raises(UserError, match=f"{', '.join(without)}: no --preset course yet"):
            plan(False, "mnist-embedded", None, "cpu", "course")
    only = plan(False, "mnist-embedded", None, "cpu", "course", {"autoencoder course"})
    assert "autoencoder course" in [p.name for p in only]
    # with every preset present the plan holds one part per protocol
    from connlab.experiments import autoencoder

    for c in without:
        monkeypatch.setattr(REGISTRY[c].config_class, "PRESETS", {"course": {}}, raising=False)
    assert [p.name for p in plan(False, "mnist-embedded", None, "cpu", "course")] == [
        "autoencoder course", "depth course", "ladder course", "attention course"]
    assert autoencoder.AutoencoderExperiment.PRESETS["course"]["epochs"] == 20


def test_demo_preset_course_runs_every_protocol_and_writes_its_report_and_explorer(monkeypatch, tmp_path):
    """The full reproduction's command end to end, each protocol cut to one epoch on a few digits (its real
    flags are checked above). Found by running it whole: its explorer could not export the course's network."""
    import importlib.util
    import json
    import re

    from connlab import demo
    from connlab.cli import main
    from connlab.experiments.registry import COURSE_DEMO, DemoStep
    from connlab.explore.page import RUNTIME, RUNTIME_FILES

    tiny = {"autoencoder": ("--skip", "all", "--epochs", "1", "--limit", "32", "--seeds", "2",
                            "--validation-images", "20", "--monitor-images", "20", "--iterate", "2"),
            "depth": ("--epochs", "1", "--limit", "64", "--seeds", "2"),
            "ladder": ("--epochs", "1", "--limit", "16", "--seeds", "2", "--eval-images", "8"),
            "attention": ("--epochs", "20", "--seeds", "2", "--sweep", "20", "--block-steps", "2")}
    steps = tuple((c, DemoStep(("--preset", "course", *tiny[c]), ("--preset", "course", *tiny[c]), name=s.name,
                               folder=s.folder, takes_data_dir=s.takes_data_dir)) for c, s in COURSE_DEMO)
    monkeypatch.setattr(demo, "COURSE_DEMO", steps)
    out = tmp_path / "course"
    # the explorer needs the explore extra and onnxruntime-web (make test installs both)
    explorer = importlib.util.find_spec("onnxscript") is not None and all((RUNTIME / f).is_file() for f in RUNTIME_FILES)
    assert main(["demo", "--preset", "course", "--out", str(out), *([] if explorer else ["--no-explorer"])]) == 0
    record = json.loads((out / "demo.json").read_text())
    assert [p["name"] for p in record["parts"]] == [s.name for _, s in COURSE_DEMO]
    html = (out / "report.html").read_text()
    ids = re.findall(r'<h2 id="([^"]+)"', html)
    assert ids[:4] == ["autoencoder-course", "depth", "ladder", "attention"], ids
    for published in ("0.1652", "0.1447", "0.634", "0.1619"):  # each course figure beside ours
        assert published in html, published
    # the ladder cut to one epoch is not the course's protocol: its page says so instead of a verdict
    assert "not the course&#x27;s protocol: " in html and "epochs" in html
    if explorer:
        page = (out / "explorer.html").read_text()
        manifest = json.loads(re.search(r'<script type="application/json" id="manifest">(.*?)</script>', page,
                                        re.S).group(1))
        assert {"course_ae_none", "course_ae_concat", "course_ladder_step", "course_ladder_up",
                "toy_head"} == set(manifest["models"])
        assert manifest["export_errors"] == []
