"""``connlab explore``: exported models match PyTorch, and the page works as a person uses it.

The run folders are made once per session at the tiniest size: the ladder, ViT and attention
parts by their own commands (``connlab.cli.main``, in process); the autoencoder and the
diffusion run are written with the lab's own ``prepare_run`` / ``save_weights`` and untrained
weights, because their commands spend most of a minute scoring on the whole test set, which
parity does not need.  Parity does not need trained weights; the class check of DDIM does
and is the one ``slow`` test (it trains ``diffusion --preset demo``, or uses the run named by
``CONNLAB_EXPLORE_DIFFUSION_RUN``).

The page tests drive Debian's Chromium through Playwright (``executable_path``, no browser
download) and need onnxruntime-web from ``npm ci``; without either they skip, saying why.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pytest
import torch

from connlab.cli import main

CHROMIUM = Path("/usr/bin/chromium")
TOL_ONNX = 1e-4     # Python onnxruntime vs PyTorch
TOL_PAGE = 1e-3     # onnxruntime-web in Chromium vs PyTorch


# --- run folders -----------------------------------------------------------------------------------


def _generator(run: Path):
    """The run's sampler as the explorer exports it: fp32, contiguous, on the CPU."""
    from connlab.sampling.generate import Generator
    from connlab.experiments.diffusion import DiffusionExperiment
    from connlab.runtime.speed import Speed

    return Generator.from_run(run, "cpu", Speed(precision="fp32", channels_last="off"), DiffusionExperiment)

def _autoencoder_run(out: Path) -> None:
    from connlab.checkpoint import model_signature, save_weights
    from connlab.experiments.autoencoder import AutoencoderExperiment
    from connlab.models.autoencoder import AutoencoderConfig, DenoisingAutoencoder
    from connlab.runs import prepare_run

    out, cfg = prepare_run(out, "autoencoder", AutoencoderExperiment(skip="all"), resume=False)
    for i, skip in enumerate(("none", "concat", "add")):
        torch.manual_seed(10 + i)
        model_cfg = AutoencoderConfig(skip, cfg.upsample)
        model = DenoisingAutoencoder(model_cfg)
        folder = out / "variants" / f"{skip}-seed0"
        folder.mkdir(parents=True)
        save_weights(model, folder / "model.safetensors", {"signature": model_signature(model, asdict(model_cfg))})


def _diffusion_run(out: Path, preset: str = "demo") -> None:
    """``demo``: latent, v-prediction, class-conditional; ``pixel``: pixels, ε, unconditional, x̂₀ clipped."""
    from connlab.checkpoint import model_signature, save_weights
    from connlab.sampling.generate import plain_config
    from connlab.experiments.diffusion import DiffusionExperiment
    from connlab.models.diffusion_unet import DiffusionUNet
    from connlab.models.latent_ae import LatentAEConfig, LatentAutoencoder
    from connlab.runs import prepare_run

    settings = {**DiffusionExperiment.PRESETS[preset], "base_channels": 8, "channel_mults": (1, 2)}
    out, cfg = prepare_run(out, "diffusion", DiffusionExperiment(preset=preset, **settings), resume=False)
    torch.manual_seed(20)
    unet = DiffusionUNet(cfg.unet_config())
    for p in unet.parameters():  # the zero-initialised output layer would make every step trivial
        p.data.add_(0.05 * torch.randn_like(p))
    save_weights(unet, out / "ema.safetensors", {"signature": model_signature(unet, plain_config(cfg.unet_config()))})
    if cfg.space == "pixel":
        return
    ae_cfg = LatentAEConfig(latent_channels=cfg.latent_channels)
    ae = LatentAutoencoder(ae_cfg)
    (out / "autoencoder").mkdir()
    save_weights(ae, out / "autoencoder" / "autoencoder.safetensors",
                 {"signature": model_signature(ae, asdict(ae_cfg))})


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory) -> Path:
    """A demo-shaped folder with every part the explorer shows, at the tiniest size."""
    torch.manual_seed(0)
    d = tmp_path_factory.mktemp("explore") / "demo"
    _autoencoder_run(d / "autoencoder")
    _diffusion_run(d / "diffusion")
    for argv in (["ladder", "--steps", "2", "--epochs", "1", "--limit", "32", "--batch-size", "32",
                  "--eval-images", "10"],
                 ["vit", "--epochs", "1", "--limit", "32", "--dim", "16", "--depth", "1", "--heads", "2",
                  "--stem-channels", "8"],
                 ["attention", "--epochs", "1", "--train-size", "64", "--test-size", "32", "--dim", "16"]):
        data = ["--dataset", "mnist-embedded"] if argv[0] != "attention" else []  # attention makes its own data
        assert main([*argv, *data, "--out", str(d / argv[0])]) == 0
    # the course's toy head: a few epochs of one seed (parity needs no trained weights)
    assert main(["attention", "--preset", "course", "--epochs", "20", "--seeds", "1", "--sweep", "20",
                 "--block-steps", "2", "--out", str(d / "toy_attention")]) == 0
    # the course's Exercise 1 and diffusion notebook beside the lab's (one epoch on 32 of its digits)
    for command, extra in (("autoencoder", ["--validation-images", "20", "--monitor-images", "20", "--iterate", "0"]),
                           ("ladder", ["--eval-images", "10", "--dataset", "mnist-embedded"])):
        assert main([command, "--preset", "course", "--epochs", "1", "--limit", "32", "--seeds", "1", *extra,
                     "--out", str(d / f"{command}-course")]) == 0
    return d


COURSE_RUNS = {"autoencoder": "autoencoder-course", "ladder": "ladder-course"}  # the panels with two settings


@pytest.fixture(scope="session")
def exports(demo_dir) -> dict[str, list]:
    """Every run's exported models, by run folder (exporting is the slow step: done once per session)."""
    from connlab.explore.page import parts

    folders = [part.experiment for part in parts()] + list(COURSE_RUNS.values())
    return {folder: next(p for p in parts() if folder in (p.experiment, COURSE_RUNS.get(p.experiment))).export(
        demo_dir / folder) for folder in folders}


@pytest.fixture(scope="session")
def exported(exports):
    """Every exported model, by its name in the page (the course's runs' models: ``course_...``)."""
    from connlab.explore.page import model_name

    return {model_name(m.name, "course" if folder.endswith("-course") else "lab"): m
            for folder, models in exports.items() for m in models}


# --- export: Python onnxruntime vs PyTorch -------------------------------------------------------

MODELS = ["ae_none", "ae_concat", "ae_add", "ladder_step", "ladder_up", "ddim_step", "to_image", "vit", "sequence",
          "toy_head", "course_ae_none", "course_ae_concat", "course_ladder_step", "course_ladder_up"]


def test_every_part_exports_its_models(exported):
    assert set(exported) == set(MODELS)
    # the course's runs are the course's networks: the 16-filter bottleneck, Keras' initialisation, its ladder
    assert exported["course_ae_concat"].info | {"weights": ""} == {
        "skip": "concat", "weights": "", "preset": "course", "noise": 1.0, "noise_dist": "salt-pepper",
        "bottleneck": 16, "init": "keras", "dataset": "course"}
    assert exported["course_ladder_step"].info["preset"] == "course" and exported["ladder_step"].info["preset"] == "lab"
    assert exported["course_ladder_step"].info["bottleneck"] == 16 and exported["ladder_step"].info["bottleneck"] == 0


@pytest.mark.parametrize("name", MODELS)
def test_onnx_matches_pytorch(exported, name):
    import onnx
    import onnxruntime as ort

    m = exported[name]
    proto = onnx.load_from_string(m.onnx)
    assert not any(t.data_location == onnx.TensorProto.EXTERNAL for t in proto.graph.initializer)  # weights inside
    session = ort.InferenceSession(m.onnx, providers=["CPUExecutionProvider"])
    feeds = {i.name: m.inputs[i.name] for i in session.get_inputs()}
    got = session.run(list(m.outputs), feeds)
    for (key, want), have in zip(m.outputs.items(), got):
        assert have.shape == want.shape, key
        assert np.abs(have - want).max() <= TOL_ONNX, key


def test_recorded_outputs_are_the_lab_models_own(demo_dir, exported):
    """The wrappers add outputs, not arithmetic: all skips on is ``denoise``; the DDIM step is ``ddim_step``."""
    from connlab.diffusion import ddim_step, guided
    from connlab.sampling.generate import Generator
    from connlab.explore.export import AutoencoderPage, load
    from connlab.models.autoencoder import AutoencoderConfig, DenoisingAutoencoder

    x = torch.rand(1, 1, 28, 28)
    # the lab's U-Net, and the course's with its bottleneck (the page's wrapper once skipped the bottleneck)
    for cfg, folder in ((AutoencoderConfig("concat"), "autoencoder"),
                        (AutoencoderConfig("concat", bottleneck=16, init="keras"), "autoencoder-course")):
        ae = load(DenoisingAutoencoder(cfg), demo_dir / folder / "variants" / "concat-seed0" / "model.safetensors")
        page = AutoencoderPage(ae)
        with torch.no_grad():
            assert torch.equal(page(x, torch.ones(2)), torch.sigmoid(ae(x))), folder
            # a skip switched off changes the output: the toggle reaches the network
            assert (page(x, torch.tensor([0.0, 1.0])) - page(x, torch.ones(2))).abs().max() > 1e-4, folder

    m = exported["ddim_step"]
    gen = _generator(demo_dir / "diffusion")
    x_t, t, t_prev = (torch.from_numpy(m.inputs[k]) for k in ("x", "t", "t_prev"))
    y, w = torch.from_numpy(m.inputs["y"]), float(m.inputs["w"][0])
    with torch.no_grad():
        out = guided(gen.model, y, w)(x_t, t)
        want = ddim_step(gen.schedule, out, int(t), int(t_prev), x_t, 0.0, None, gen.cfg.prediction, False)
    assert np.abs(m.outputs["x_prev"] - want.numpy()).max() <= 1e-5


def test_the_page_gets_the_samplers_own_timesteps(exported):
    """The DDIM time steps the page loops over are ``ddim_timesteps``' for every K its slider offers."""
    from connlab.diffusion.samplers import ddim_timesteps

    info = exported["ddim_step"].info
    steps = info["steps"]
    assert set(info["timesteps"]) == {str(k) for k in range(steps["min"], steps["max"] + 1)}
    for k in (steps["min"], 10, steps["default"], steps["max"]):
        assert info["timesteps"][str(k)] == ddim_timesteps(info["T"], k).tolist()


@pytest.mark.parametrize("name, dist", [("interpolate", "norm"), ("interpolate", "uniform"), ("walk", "norm"),
                                        ("vp", "uniform")])
def test_the_way_up_the_ladder_is_the_labs_forward_process(name, dist):
    """``LadderUp`` with the noise the lab would draw gives the lab's own x_T (course_endpoint, full_ladder)."""
    from connlab.data.noise import draw_noise
    from connlab.diffusion.ladder import LadderSchedule, course_endpoint, full_ladder
    from connlab.explore.export import LadderUp, sample_digit

    T = 3
    schedule = LadderSchedule(name, T, 0.8, dist)
    x0 = sample_digit(7)
    g = torch.Generator().manual_seed(1)
    if schedule.interpolates:
        z = torch.stack([draw_noise(x0, dist, g)] + [torch.zeros_like(x0)] * (T - 1))
        want = course_endpoint(x0, schedule, torch.Generator().manual_seed(1))
    else:
        z = torch.stack([draw_noise(x0, dist, g) for _ in range(T)])
        want = full_ladder(x0, schedule, torch.Generator().manual_seed(1))[-1]
    assert torch.equal(LadderUp(schedule)(x0, z), want)


@pytest.mark.parametrize("condition", ["learned", "sinusoidal"])
def test_a_step_conditioned_ladder_reads_t_at_run_time(condition):
    """t is an input of the exported step, not a constant traced into it."""
    import onnxruntime as ort

    from connlab.explore.export import LadderStep, export_model, sample_digit
    from connlab.models.step_conditioned import StepConditionConfig, StepConditionedUNet

    torch.manual_seed(0)
    step = LadderStep(StepConditionedUNet(StepConditionConfig(condition, 5))).eval()
    for p in step.parameters():  # the step embedding starts at zero: give t something to change
        p.data.add_(0.05 * torch.randn_like(p))
    x = torch.rand(1, 1, 28, 28)
    session = ort.InferenceSession(export_model("ladder_step", step, {"x": x, "t": torch.tensor([3])}, ["x_prev"]).onnx)
    outputs = []
    for t in (1, 5):
        with torch.no_grad():
            want = step(x, torch.tensor([t])).numpy()
        got = session.run(None, {"x": x.numpy(), "t": np.array([t])})[0]
        assert np.abs(got - want).max() <= TOL_ONNX
        outputs.append(got)
    assert np.abs(outputs[0] - outputs[1]).max() > 1e-4


# --- the page file, bad input ---------------------------------------------------------------------

def _manifest(html: str) -> dict:
    text = re.search(r'<script type="application/json" id="manifest">(.*?)</script>', html, re.S).group(1)
    return json.loads(text)


needs_runtime = pytest.mark.skipif(
    not (Path(__file__).resolve().parents[1] / "src/connlab/explore/web/node_modules/onnxruntime-web").is_dir(),
    reason="needs onnxruntime-web: npm ci --prefix src/connlab/explore/web (make test runs it)")


@pytest.fixture(scope="session")
def explorer_page(demo_dir, exports, tmp_path_factory) -> Path:
    """The page for ``demo_dir``, written by ``write_explorer`` from the session's exports."""
    from connlab.explore import page as page_module

    real = page_module.parts
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(page_module, "parts", lambda: [replace(p, export=lambda run: exports[run.name]) for p in real()])
        return page_module.write_explorer(demo_dir, tmp_path_factory.mktemp("page") / "explorer.html")


@needs_runtime
def test_page_is_one_offline_file(explorer_page):
    html = explorer_page.read_text()
    assert explorer_page.stat().st_size < 20e6
    from tests.test_report import external_references

    assert external_references(html) == []  # the report's own check: nothing is fetched from elsewhere
    manifest = _manifest(html)
    assert len(manifest["models"]) == 14 and manifest["left_out"] == [] and manifest["export_errors"] == []
    assert len(manifest["digits"]) == 10
    # the panels in order, each with its section and its models: the page's one list of parts
    assert [p["part"] for p in manifest["panels"]] == ["autoencoder", "ladder", "diffusion", "vit", "attention",
                                                       "toy_attention"]
    assert {name for p in manifest["panels"] for name in p["models"]} == set(manifest["models"])
    for p in manifest["panels"]:
        assert f'id="{p["section"]}"' in html
    # the script is the joined modules: no import/export statement is left for the browser to resolve
    script = re.search(r'<script type="module">(.*?)</script>', html, re.S).group(1)
    assert "// --- panels/diffusion.js" in script and not re.search(r"^\s*(import|export) ", script, re.M)
    assert "ddimTimesteps" not in script  # the sampler's spacing comes from the manifest


@pytest.fixture(scope="session")
def attention_only_page(demo_dir, tmp_path_factory) -> Path:
    import shutil

    from connlab.explore import write_explorer

    only = tmp_path_factory.mktemp("partial") / "demo"
    shutil.copytree(demo_dir / "attention", only / "attention")
    return write_explorer(only, log=lambda line: None)


@needs_runtime
def test_missing_parts_are_left_out_with_their_command(attention_only_page):
    manifest = _manifest(attention_only_page.read_text())
    assert set(manifest["models"]) == {"sequence"}
    commands = {p["part"]: p["command"] for p in manifest["left_out"]}
    assert commands["ladder"] == f"connlab ladder --out {attention_only_page.parent}/ladder"
    assert set(commands) == {"autoencoder", "ladder", "diffusion", "vit", "toy_attention"}
    assert commands["toy_attention"] == (f"connlab attention --preset course --out "
                                         f"{attention_only_page.parent}/attention-course")


@needs_runtime
def test_a_part_that_fails_to_export_is_a_bug_named_on_the_page_and_the_command_fails(demo_dir, tmp_path, monkeypatch):
    import shutil

    from connlab.explore import page as page_module

    only = tmp_path / "demo"
    for part in ("attention", "vit"):
        shutil.copytree(demo_dir / part, only / part)
    real = page_module.parts

    def broken(run):
        raise RuntimeError("unsupported operator aten::foo")

    monkeypatch.setattr(page_module, "parts", lambda: [p if p.experiment != "vit" else replace(p, export=broken)
                                                       for p in real()])
    lines = []
    with pytest.raises(page_module.ExportFailed, match="without the ViT") as failed:
        page_module.write_explorer(only, log=lines.append)
    assert isinstance(failed.value.__cause__, RuntimeError)  # the bug keeps its traceback
    manifest = _manifest((only / "explorer.html").read_text())  # the other parts are still on the page
    assert set(manifest["models"]) == {"sequence"}
    assert any("the ViT" in e and "unsupported operator aten::foo" in e for e in manifest["export_errors"])
    assert any("could not export" in line and "aten::foo" in line for line in lines)
    assert any(line.startswith("Traceback") and "RuntimeError: unsupported operator aten::foo" in line for line in lines)
    with pytest.raises(page_module.ExportFailed):  # so `connlab explore` exits non-zero with the traceback
        main(["explore", str(only)])


@needs_runtime
def test_an_unreadable_run_part_is_left_out_naming_the_file(demo_dir, tmp_path):
    import shutil

    from connlab.explore import page as page_module

    only = tmp_path / "demo"
    for part in ("attention", "vit"):
        shutil.copytree(demo_dir / part, only / part)
    weights = only / "vit" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])  # cut short
    lines = []
    manifest = _manifest(page_module.write_explorer(only, log=lines.append).read_text())
    assert set(manifest["models"]) == {"sequence"}
    why = {p["part"]: p["why"] for p in manifest["left_out"]}["vit"]
    assert str(weights) in why and "not a readable safetensors file" in why


def test_not_a_run_folder_is_one_line_and_exit_2(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["explore", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "not a connlab run folder" in err and "empty" in err
    assert main(["explore", str(tmp_path / "nowhere")]) == 2
    assert "no such run folder" in capsys.readouterr().err


def test_missing_runtime_names_the_command(demo_dir, tmp_path, monkeypatch):
    from connlab.errors import UserError
    from connlab.explore import page as page_module

    monkeypatch.setattr(page_module, "RUNTIME", tmp_path / "none")
    with pytest.raises(UserError, match="npm ci"):
        page_module.write_explorer(demo_dir, tmp_path / "x.html")


# --- the page in Chromium ------------------------------------------------------------------------------

needs_browser = pytest.mark.skipif(not CHROMIUM.exists(),
                                   reason="needs Debian's chromium at /usr/bin/chromium (apt-get install chromium)")


class Visit:
    """A page opened from file:// in headless Chromium, with its console and requests recorded."""

    def __init__(self, browser, path: Path):
        self.console, self.requests = [], []
        self.page = browser.new_page()
        self.page.on("console", lambda m: self.console.append((m.type, m.text)))
        self.page.on("pageerror", lambda e: self.console.append(("error", str(e))))
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.goto(path.as_uri())
        self.page.wait_for_selector("body[data-ready=true]", timeout=60_000)

    def settled(self):
        self.page.evaluate("explorer.settled()")

    def errors(self):
        return [text for kind, text in self.console if kind == "error"]

    def schemes(self):
        return {url.split(":", 1)[0] for url in self.requests}


# ``browser`` (pytest-playwright, on Debian's Chromium) comes from tests/conftest.py: one browser for the session


def _array(page, expression) -> np.ndarray:
    return np.asarray(page.evaluate(f"Array.from({expression})"), dtype=np.float32)


@needs_runtime
@needs_browser
def test_page_self_test_and_autoencoders_as_a_person_uses_them(browser, explorer_page, demo_dir, tmp_path):
    from connlab.explore.export import AutoencoderPage, load
    from connlab.models.autoencoder import AutoencoderConfig, DenoisingAutoencoder

    v = Visit(browser, explorer_page)
    pg = v.page
    report = json.loads(pg.inner_text("#self-test"))
    assert report["models"] == 14 and report["errors"] == [] and report["max_abs_diff"] <= TOL_PAGE

    # draw a stroke with the mouse on a cleared canvas
    pg.click("#clear")
    box = pg.locator("#draw").bounding_box()
    pg.mouse.move(box["x"] + 140, box["y"] + 40)
    pg.mouse.down()
    for k in range(1, 11):
        pg.mouse.move(box["x"] + 140 - 4 * k, box["y"] + 40 + 20 * k)
    pg.mouse.up()
    # the noise slider, moved from the keyboard
    pg.focus("#sigma")
    pg.keyboard.press("ArrowRight")
    assert pg.inner_text("#sigma-value") == "0.55"
    v.settled()
    clean = _array(pg, "explorer.state.clean")
    assert (clean > 0.5).sum() > 20  # the stroke is in the digit the models see
    # switch the U-Net's 28x28 skip off, as a person would
    pg.uncheck("#ae-concat-keep0")
    v.settled()
    noisy = _array(pg, "explorer.state.noisy")
    for skip in ("none", "concat", "add"):
        model = load(DenoisingAutoencoder(AutoencoderConfig(skip)),
                     demo_dir / "autoencoder" / "variants" / f"{skip}-seed0" / "model.safetensors")
        keep = pg.evaluate(f"explorer.state.ae.{skip}.keep")
        assert keep == ([0, 1] if skip == "concat" else [1, 1])
        assert np.array_equal(_array(pg, f"explorer.state.ae.{skip}.input"), noisy)
        with torch.no_grad():
            want = AutoencoderPage(model)(torch.from_numpy(noisy).view(1, 1, 28, 28),
                                          torch.tensor(keep, dtype=torch.float32))
        got = _array(pg, f"explorer.state.ae.{skip}.output")
        assert np.abs(got - want.numpy().reshape(-1)).max() <= TOL_PAGE, skip
        assert "PSNR" in pg.inner_text(f"#ae-{skip}-numbers")
    pg.click("#feed-back")
    pg.click("#feed-back")
    v.settled()
    assert pg.inner_text("#feed-numbers").count("→") == 6  # three networks, two passes each
    pg.screenshot(path=str(tmp_path / "explorer-autoencoders.png"), full_page=True)
    assert v.errors() == []
    assert v.schemes() <= {"file", "data", "blob"}


@needs_runtime
@needs_browser
def test_the_course_setting_runs_the_courses_networks_in_the_same_panels(browser, explorer_page, demo_dir):
    """Where a demo folder holds the course's runs beside the lab's, the autoencoder and ladder panels switch."""
    from connlab.experiments.autoencoder import AutoencoderExperiment
    from connlab.experiments.ladder import LadderExperiment
    from connlab.explore.export import AutoencoderPage, LadderStep, experiment_config, load
    from connlab.models.autoencoder import DenoisingAutoencoder
    from connlab.models.step_conditioned import StepConditionedUNet

    v = Visit(browser, explorer_page)
    pg = v.page
    assert pg.evaluate("Object.values(explorer.state.ae).map((a) => a.model)") == ["ae_none", "ae_concat", "ae_add"]
    assert "no bottleneck" in pg.inner_text("#ae-setting")
    # the course's noise, as a student picks it in part 1, then the course's networks
    pg.select_option("#dist", "salt-pepper")
    pg.check("#autoencoder-setting-course")
    v.settled()
    assert pg.evaluate("Object.values(explorer.state.ae).map((a) => a.model)") == ["course_ae_none", "course_ae_concat"]
    assert pg.locator("#ae-add").count() == 0  # the course compares none and concat only
    said = pg.inner_text("#ae-setting")
    assert "16-filter bottleneck" in said and "Keras'" in said and "salt-pepper" in said, said
    noisy = _array(pg, "explorer.state.noisy")
    clean = _array(pg, "explorer.state.clean")
    # salt-pepper at σ 0.5: every pixel is the clean one, or moved by exactly ±0.5 (then clipped)
    moved = np.abs(noisy - clean)
    assert np.all(np.isclose(moved, 0) | np.isclose(moved, 0.5) | np.isclose(noisy, 0) | np.isclose(noisy, 1))
    assert (moved > 0.25).mean() > 0.2
    cfg = experiment_config(demo_dir / "autoencoder-course", AutoencoderExperiment)
    for skip in ("none", "concat"):
        model = load(DenoisingAutoencoder(cfg.model_config(skip)),
                     demo_dir / "autoencoder-course" / "variants" / f"{skip}-seed0" / "model.safetensors")
        with torch.no_grad():
            want = AutoencoderPage(model)(torch.from_numpy(noisy).view(1, 1, 28, 28), torch.ones(2))
        assert np.abs(_array(pg, f"explorer.state.ae.{skip}.output") - want.numpy().reshape(-1)).max() <= TOL_PAGE
    pg.click("#feed-back")
    v.settled()
    assert pg.inner_text("#feed-numbers").count("→") == 2  # the course's two networks, one pass each

    # the ladder: the course's network, its T, from pure noise
    pg.check("#ladder-setting-course")
    pg.select_option("#ladder-start", "noise")
    v.settled()
    assert pg.evaluate("explorer.state.ladder.model") == "course_ladder_step"
    lcfg = experiment_config(demo_dir / "ladder-course", LadderExperiment)
    T = lcfg.shown_steps
    assert pg.get_attribute("#ladder-step", "max") == str(T) and f"T = {T} rungs" in pg.inner_text("#ladder-setting")
    chain = pg.evaluate("explorer.state.ladder.chain.map((c) => Array.from(c))")
    step = LadderStep(load(StepConditionedUNet(lcfg.model_config(T, "none")),
                           demo_dir / "ladder-course" / "variants" / lcfg.variant_name(T, "none", lcfg.seed)
                           / "model.safetensors"))
    x = torch.tensor(chain[0]).view(1, 1, 28, 28)
    with torch.no_grad():
        for t in range(T, 0, -1):
            x = step(x, torch.tensor([t]))
    assert len(chain) == T + 1 and np.abs(np.asarray(chain[-1]) - x.numpy().reshape(-1)).max() <= TOL_PAGE

    # each setting links to its own report section, with that section's verdict sentence
    links = {s: pg.eval_on_selector_all(f"#{s} p.report a", "(as) => as.map((a) => a.getAttribute('href'))")
             for s in ("ae-part", "ladder-part")}
    assert links == {"ae-part": ["report.html#autoencoder", "report.html#autoencoder-course"],
                     "ladder-part": ["report.html#ladder", "report.html#ladder-course"]}
    assert "the course's exercise, --preset course" in pg.inner_text("#ae-part p.report >> nth=1")
    assert v.errors() == []


def test_a_course_only_folder_shows_the_courses_runs_and_links_the_reports_own_sections(demo_dir, tmp_path):
    """`demo --preset course` has only the course's runs: they fill the panels, and each panel's link is a section
    id of the report built from the same folder (with no lab run beside it, the course's ladder section is the
    report's ``ladder``, not ``ladder-course``)."""
    import shutil
    from html import escape

    from connlab.explore.page import find_runs, report_links
    from connlab.report import build_report

    only = tmp_path / "course-demo"
    for folder in ("autoencoder-course", "ladder-course"):
        shutil.copytree(demo_dir / folder, only / folder)
    runs = find_runs(only)
    assert runs == {"autoencoder:course": only / "autoencoder-course", "ladder:course": only / "ladder-course"}
    links = report_links(only)
    html = build_report(sorted(runs.values()), only / "report.html").read_text()
    ids = set(re.findall(r'<h2 id="([^"]+)"', html))
    assert {v["report"] for v in links.values()} <= ids and links["ladder:course"]["report"] == "ladder", (links, ids)
    assert all(v["verdict"] and escape(v["verdict"]) in html for v in links.values())
    # beside the lab's runs, the course's ladder section carries its folder's name (report.page.anchors)
    both = {k: v["report"] for k, v in report_links(demo_dir).items()}
    assert both["ladder"] == "ladder" and both["ladder:course"] == "ladder-course"


@needs_runtime
@needs_browser
def test_ladder_vit_attention_and_ddim_panels_match_pytorch(browser, explorer_page, demo_dir, exported, tmp_path):
    from connlab.sampling.generate import Generator
    from connlab.explore.export import LadderStep, SequencePage, ViTPage, experiment_config, load
    from connlab.experiments.attention import AttentionExperiment, SequenceTransformer
    from connlab.experiments.ladder import LadderExperiment
    from connlab.experiments.vit import ViTExperiment
    from connlab.models.step_conditioned import StepConditionConfig, StepConditionedUNet
    from connlab.models.vit import ViT

    v = Visit(browser, explorer_page)
    pg = v.page
    # the ladder from pure noise: the same T network passes in PyTorch
    pg.select_option("#ladder-start", "noise")
    v.settled()
    chain = pg.evaluate("explorer.state.ladder.chain.map((c) => Array.from(c))")
    T = exported["ladder_step"].info["T"]
    assert len(chain) == T + 1
    lcfg = experiment_config(demo_dir / "ladder", LadderExperiment)
    step = LadderStep(load(StepConditionedUNet(StepConditionConfig(lcfg.condition, T)),
                           demo_dir / "ladder" / "variants" / f"T{T}-{lcfg.condition}" / "model.safetensors"))
    x = torch.tensor(chain[0]).view(1, 1, 28, 28)
    with torch.no_grad():
        for t in range(T, 0, -1):
            x = step(x, torch.tensor([t]))
    assert np.abs(np.asarray(chain[-1]) - x.numpy().reshape(-1)).max() <= TOL_PAGE
    pg.focus("#ladder-step")
    pg.keyboard.press("End")
    assert f"after {T} of {T} steps" in pg.inner_text("#ladder-numbers")

    # the ViT on the drawing (the first test digit at start)
    vit = ViTPage(load(ViT(experiment_config(demo_dir / "vit", ViTExperiment).model_config()),
                       demo_dir / "vit" / "model.safetensors"))
    clean = torch.from_numpy(_array(pg, "explorer.state.clean")).view(1, 1, 28, 28)
    with torch.no_grad():
        probs, _, rollout = vit(clean)
    assert np.abs(_array(pg, "explorer.state.vit.probs") - probs.numpy().reshape(-1)).max() <= TOL_PAGE
    assert np.abs(_array(pg, "explorer.state.vit.rollout.data") - rollout.numpy().reshape(-1)).max() <= TOL_PAGE
    pg.select_option("#vit-map", "0,1")
    assert "reads a" in pg.inner_text("#vit-numbers")

    # a typed sequence for the attention task
    exp = experiment_config(demo_dir / "attention", AttentionExperiment)
    seq = SequencePage(load(SequenceTransformer(exp.model_config()), demo_dir / "attention" / "model.safetensors"))
    typed = "97531864"[:exp.length]
    pg.fill("#seq-input", typed)
    v.settled()
    with torch.no_grad():
        _, attention = seq(torch.tensor([[int(c) for c in typed]]))
    got = _array(pg, "explorer.state.sequence.attention.data")
    assert np.abs(got - attention.numpy().reshape(-1)).max() <= TOL_PAGE
    assert f"input {' '.join(typed)}" in pg.inner_text("#seq-output")
    assert pg.locator("#seq-table td").count() == exp.length ** 2
    pg.fill("#seq-input", "12x")
    assert "type exactly" in pg.inner_text("#seq-output")

    # DDIM-10 of a 0 with guidance, against the lab's own sampler from the same x_T
    pg.select_option("#ddim-class", "0")
    pg.fill("#ddim-steps", "10")
    pg.fill("#ddim-w", "1.5")
    pg.click("#ddim-run")
    v.settled()
    x_T = torch.from_numpy(_array(pg, "explorer.state.diffusion.states[0]"))
    gen = _generator(demo_dir / "diffusion")
    want = gen.sample("ddim", 10, 1, guidance=1.5, x_T=x_T.view(1, *gen.shape))
    assert np.abs(_array(pg, "explorer.state.diffusion.image") - want.numpy().reshape(-1)).max() <= TOL_PAGE
    pg.focus("#ddim-scrub")
    pg.keyboard.press("Home")
    v.settled()
    assert "step 0: t = 900" in pg.inner_text("#ddim-numbers")
    pg.screenshot(path=str(tmp_path / "explorer-panels.png"), full_page=True)
    assert v.errors() == []
    assert v.schemes() <= {"file", "data", "blob"}


@needs_runtime
@needs_browser
def test_every_control_has_a_label_and_every_canvas_its_numbers(browser, explorer_page):
    v = Visit(browser, explorer_page)
    unlabelled = v.page.evaluate("""() => [...document.querySelectorAll('input, select, button')].filter((el) =>
        !(el.labels && el.labels.length) && !el.getAttribute('aria-label') && !el.textContent.trim())
        .map((el) => el.id)""")
    assert unlabelled == []
    mute = v.page.evaluate("""() => [...document.querySelectorAll('canvas:not(.strip canvas)')].filter((el) => {
        const ids = (el.getAttribute('aria-describedby') || '').split(' ').filter(Boolean);
        return !ids.some((id) => document.getElementById(id)?.textContent.trim());
    }).map((el) => el.id)""")
    assert mute == []
    # keyboard drawing: arrows move the pen on the focused canvas
    v.page.click("#clear")
    v.page.focus("#draw")
    for key in ("ArrowDown", "ArrowDown", "ArrowRight"):
        v.page.keyboard.press(key)
    v.settled()
    assert (_array(v.page, "explorer.state.clean") > 0.5).sum() > 5
    assert v.page.inner_text("#draw-pen") == "pen down at column 16, row 17"
    v.page.keyboard.press("p")
    assert v.page.inner_text("#draw-pen").startswith("pen up")


@needs_runtime
@needs_browser
def test_a_finger_tap_draws(browser, explorer_page):
    context = browser.new_context(has_touch=True)
    try:
        pg = context.new_page()
        pg.goto(explorer_page.as_uri())
        pg.wait_for_selector("body[data-ready=true]", timeout=60_000)
        pg.click("#clear")
        pg.tap("#draw", position={"x": 100, "y": 100})
        pg.evaluate("explorer.settled()")
        assert (_array(pg, "explorer.state.clean") > 0.5).sum() >= 4  # a dot of the brush's width
    finally:
        context.close()


@needs_runtime
@needs_browser
def test_a_page_with_parts_left_out_still_works(browser, attention_only_page):
    v = Visit(browser, attention_only_page)
    report = json.loads(v.page.inner_text("#self-test"))
    assert report["models"] == 1 and report["errors"] == []
    notes = v.page.inner_text("#left-out")
    assert "Make it with: connlab ladder --out" in notes and "the three autoencoders" in notes
    assert "Left out" in v.page.inner_text("#ae-part")
    # only the part that is here links to a report section: the others have no run, so no section
    links = v.page.eval_on_selector_all("p.report a", "(as) => as.map((a) => a.getAttribute('href'))")
    assert links == ["report.html#attention"]
    v.page.fill("#seq-input", "12345678"[:len(v.page.input_value("#seq-input"))])
    v.settled()
    assert "input 1 2 3" in v.page.inner_text("#seq-output")
    assert v.errors() == []


@needs_runtime
@needs_browser
def test_a_pixel_space_unconditional_run_samples_in_the_page(browser, tmp_path):
    from connlab.sampling.generate import Generator
    from connlab.explore import page as page_module

    run = tmp_path / "pixel"
    _diffusion_run(run, "pixel")
    lines = []
    page = page_module.write_explorer(run, tmp_path / "explorer.html", log=lines.append)
    manifest = _manifest(page.read_text())
    assert set(manifest["models"]) == {"ddim_step", "to_image"}
    assert manifest["models"]["ddim_step"]["info"]["space"] == "pixel"
    v = Visit(browser, page)
    report = json.loads(v.page.inner_text("#self-test"))
    assert report["models"] == 2 and report["errors"] == [] and report["max_abs_diff"] <= TOL_PAGE
    assert v.page.is_disabled("#ddim-class") and v.page.is_disabled("#ddim-w")
    v.page.fill("#ddim-steps", "5")
    v.page.click("#ddim-run")
    v.settled()
    gen = _generator(run)
    x_T = torch.from_numpy(_array(v.page, "explorer.state.diffusion.states[0]")).view(1, *gen.shape)
    want = gen.sample("ddim", 5, 1, x_T=x_T)
    assert np.abs(_array(v.page, "explorer.state.diffusion.image") - want.numpy().reshape(-1)).max() <= TOL_PAGE
    assert v.errors() == []


# --- slow: DDIM per class with a trained model, checked by the lab's classifier --------------------------

@pytest.mark.slow
@needs_runtime
@needs_browser
def test_ddim_in_the_page_draws_the_requested_class(browser, tmp_path):
    from connlab.experiments.classifier import load_classifier
    from connlab.explore import write_explorer

    run = os.environ.get("CONNLAB_EXPLORE_DIFFUSION_RUN")
    if run:
        run = Path(run)
    else:
        run = tmp_path / "demo" / "diffusion"
        assert main(["diffusion", "train", "--preset", "demo", "--dataset", "mnist-embedded", "--eval-num", "10",
                     "--out", str(run)]) == 0
    page = write_explorer(run, tmp_path / "explorer.html")
    classifier, _ = load_classifier(run / "classifier", "cpu")
    v = Visit(browser, page)
    images = []
    for c in range(10):
        v.page.select_option("#ddim-class", str(c))
        v.page.fill("#ddim-seed", str(c))
        v.page.click("#ddim-run")
        v.settled()
        images.append(_array(v.page, "explorer.state.diffusion.image"))
    with torch.no_grad():
        labels = classifier(torch.from_numpy(np.stack(images)).view(10, 1, 28, 28)).argmax(1).tolist()
    v.page.screenshot(path=str(tmp_path / "explorer-ddim.png"), full_page=True)
    assert sum(int(label == c) for c, label in enumerate(labels)) >= 8, labels
    assert v.errors() == []


@needs_runtime
@needs_browser
def test_toy_head_panel_shows_the_heads_weights_and_predictions(browser, explorer_page, demo_dir):
    """Pick the woman's sentence, then type a shorter one: the tables are PyTorch's numbers for the trained head."""
    from connlab.models.toy_attention import TOKENS, encode

    from connlab.explore.export import export_toy_head

    model = export_toy_head(demo_dir / "toy_attention")[0]
    torch_model = _toy_model(demo_dir / "toy_attention")
    v = Visit(browser, explorer_page)
    v.page.select_option("#toy-sentence", "<Start> woman ordered the beef")
    v.settled()
    assert "after “<Start> woman ordered the beef”" in v.page.inner_text("#toy-output")
    v.page.fill("#toy-input", "<Start> woman ordered the")
    v.settled()
    text = v.page.inner_text("#toy-output")
    assert "chicken" in text and "beef" in text
    words = "<Start> woman ordered the".split()
    with torch.no_grad():
        z = torch_model(torch.tensor([encode(" ".join(words))]))
        want_p = torch.softmax(z, -1)[0].numpy()
        want_w = torch_model.last_attention[0].numpy()
    got_w = _array(v.page, "explorer.state.toy.weights").reshape(4, 4)
    got_p = _array(v.page, "explorer.state.toy.probs").reshape(4, len(TOKENS))
    assert np.abs(got_w - want_w).max() <= TOL_PAGE and np.abs(got_p - want_p).max() <= TOL_PAGE
    assert np.all(np.triu(got_w, 1) == 0)   # the causal mask, as the page shows it
    assert len(v.page.query_selector_all("#toy-weights tr")) == 1 + 4
    v.page.fill("#toy-input", "<Start> dog")
    assert "\"dog\" is not one of the tokens" in v.page.inner_text("#toy-output")
    assert model.info["tokens"] == list(TOKENS)
    assert v.errors() == [] and v.schemes() <= {"file", "data", "blob"}


def _toy_model(run: Path):
    from connlab.models.toy_attention import ToyAttentionModel, ToyHeadConfig

    saved = json.loads((run / "toy_head.json").read_text())
    m = ToyAttentionModel(ToyHeadConfig(saved["head_size"], causal=saved["causal"]))
    with torch.no_grad():
        m.token_embed.weight.copy_(torch.tensor(saved["token_embed"]))
        m.pos_embed.weight.copy_(torch.tensor(saved["pos_embed"]))
        for name in ("q", "k", "v"):
            getattr(m.head, name).weight.copy_(torch.tensor(saved["w" + name]).T)
    return m.eval()


# --- what a person reads: names, notes, stale results, messages, layout ---------------------------------

CONTROL_ROLES = ("button", "checkbox", "combobox", "slider", "spinbutton", "textbox", "img", "group")


def _unnamed(snapshot: str) -> list[str]:
    """Lines of an aria snapshot whose control or image has no accessible name."""
    return [line.strip() for line in snapshot.splitlines()
            if re.match(rf"^\s*- '?({'|'.join(CONTROL_ROLES)})\b(?!\s*\")", line)]


@needs_runtime
@needs_browser
def test_every_control_and_canvas_has_a_name_a_person_hears(browser, explorer_page, demo_dir):
    v = Visit(browser, explorer_page)
    pg = v.page
    snapshot = pg.locator("body").aria_snapshot()
    assert _unnamed(snapshot) == [], snapshot
    canvases = pg.evaluate("document.querySelectorAll('canvas').length")
    assert len(re.findall(r"- '?img \"", snapshot)) >= canvases  # every canvas is an image with a name
    # the ladder's strip is read out, one image per rung
    T = pg.evaluate("explorer.state.ladder.chain.length") - 1
    strip = pg.get_by_role("group", name="the whole chain, from x_T to x̂_0")
    assert strip.get_by_role("img").count() == T + 1
    assert strip.get_by_role("img", name=f"x_{T} (start)").count() == 1
    # the DDIM canvases: three names, three different descriptions
    names = [pg.get_attribute(f"#ddim-{k}", "aria-label") for k in ("xt", "x0", "latent")]
    descriptions = pg.evaluate("""() => ['xt', 'x0', 'latent'].map((k) => document.getElementById('ddim-' + k)
        .getAttribute('aria-describedby').split(' ').map((id) => document.getElementById(id).textContent).join(' '))""")
    assert len(set(names)) == 3 and len(set(descriptions)) == 3 and all(d.strip() for d in descriptions)
    # the U-Net's and the additive net's skip boxes: same labels, told apart by their groups' legends
    for title in ("concat skips (U-Net)", "additive skips"):
        group = pg.get_by_role("group", name=f"{title}: skips kept")
        assert group.get_by_role("checkbox", name="skip from conv_1 (28×28)").count() == 1
        assert group.get_by_role("checkbox", name="skip from conv_2 (14×14)").count() == 1
    # every panel says what to try, what to see and why, and links to its report section
    for section in ("input-part", "ae-part", "ladder-part", "diffusion-part", "vit-part", "attention-part", "toy-part"):
        note = pg.inner_text(f"#{section} .try")
        assert "Try this" in note and "You should see" in note and "Because" in note, section
    for section, words in {"ae-part": ("Exercise 1", "residual", "U-Net"), "ladder-part": ("Exercise 2", "DDPM"),
                           "diffusion-part": ("DDPM", "DDIM", "Guidance w", "∅", "x_t, decoded"),
                           "vit-part": ("rollout",), "toy-part": ("Part II", "causal mask")}.items():
        text = pg.inner_text(f"#{section}")
        assert all(w in text for w in words), (section, words)
    links = pg.eval_on_selector_all("a[href^='report.html']", "(as) => as.map((a) => a.getAttribute('href'))")
    assert {"report.html", "report.html#autoencoder", "report.html#ladder", "report.html#diffusion", "report.html#vit",
            "report.html#attention", "report.html#gates", "report.html#rnn", "report.html#depth"} <= set(links)
    # each panel's link to the report comes with the report's own verdict sentence for that run
    from connlab.experiments.section import load_run
    from connlab.explore.page import find_runs, parts
    from connlab.report.page import build_section

    runs = find_runs(demo_dir)
    for part in parts():
        said = build_section(load_run(runs[part.experiment])).sentence
        assert said and said in pg.inner_text(f"#{part.section} p.report"), part.experiment
    assert v.errors() == []


@needs_runtime
@needs_browser
def test_stale_results_bad_settings_and_empty_input_are_said_in_words(browser, explorer_page):
    v = Visit(browser, explorer_page)
    pg = v.page
    # DDIM: another class marks the pictures stale until Generate
    assert pg.inner_text("#ddim-stale") == ""
    shown = pg.evaluate("explorer.state.diffusion.label")
    other = str((shown + 7) % 10)
    pg.select_option("#ddim-class", other)
    stale = pg.inner_text("#ddim-stale")
    assert stale.startswith("Stale") and f"class {shown}" in stale and f"press Generate for" in stale
    assert f"class {other}" in stale
    assert "stale-result" in pg.get_attribute("#ddim-row", "class")
    pg.click("#ddim-run")
    v.settled()
    assert pg.inner_text("#ddim-stale") == "" and f"class {other}," in pg.inner_text("#ddim-numbers")
    # w: a blank is an error, not 0; out of range is an error; Generate waits for a valid value
    for bad in ("", "-3", "11", "abc"):
        pg.fill("#ddim-w", bad)
        assert "guidance w must be a number from 0 to 10" in pg.inner_text("#ddim-error"), bad
        assert pg.is_disabled("#ddim-run") and pg.get_attribute("#ddim-w", "aria-invalid") == "true"
    pg.fill("#ddim-w", "1.5")
    assert pg.inner_text("#ddim-error") == "" and pg.is_enabled("#ddim-run")
    # the seed is a whole number
    pg.fill("#ddim-seed", "1.5")
    assert "the seed must be a whole number" in pg.inner_text("#ddim-error") and pg.is_disabled("#ddim-run")
    pg.fill("#ddim-seed", "3")
    assert pg.inner_text("#ddim-error") == ""
    # ∅: w has nothing to mix, so it is switched off
    pg.select_option("#ddim-class", "10")
    assert pg.is_disabled("#ddim-w")
    pg.select_option("#ddim-class", "2")
    assert pg.is_enabled("#ddim-w")

    # the noise seed of part 1 too
    pg.fill("#noise-seed", "1.5")
    assert 'the noise seed must be a whole number; "1.5" is not' in pg.inner_text("#input-error")
    pg.fill("#noise-seed", "4")
    assert pg.inner_text("#input-error") == ""

    # the ladder from pure noise claims no PSNR against the drawing
    pg.select_option("#ladder-start", "noise")
    v.settled()
    text = pg.inner_text("#ladder-numbers")
    assert "against your drawing" not in text and "nothing to compare" in text

    # an empty canvas: the ViT asks for a digit instead of guessing one
    pg.click("#clear")
    v.settled()
    assert "Draw a digit first" in pg.inner_text("#vit-numbers") and "reads a" not in pg.inner_text("#vit-numbers")
    assert pg.locator("#vit-probs .bar").count() == 0
    pg.select_option("#digit", "3")
    v.settled()
    assert "reads a" in pg.inner_text("#vit-numbers")
    legend = pg.inner_text("#vit-legend")  # the overlay's actual scale, and what an even spread would be
    assert "red scale: none = " in legend and re.search(r"spread evenly, each of the \d+ patches would get", legend)

    # invalid input for the attention task clears the old table and says what is wrong
    assert pg.locator("#seq-table td").count() > 0
    pg.fill("#seq-input", "12x")
    assert '"x" is not a digit' in pg.inner_text("#seq-output")
    assert pg.locator("#seq-table td").count() == 0
    pg.fill("#seq-input", "12")
    assert '"12" has 2 digits' in pg.inner_text("#seq-output")
    assert v.errors() == []


def _overlaps(a: dict, b: dict) -> bool:
    return a["x"] < b["x"] + b["width"] and b["x"] < a["x"] + a["width"] and \
        a["y"] < b["y"] + b["height"] and b["y"] < a["y"] + a["height"]


@needs_runtime
@needs_browser
@pytest.mark.parametrize("viewport", [{"width": 1280, "height": 800}, {"width": 390, "height": 844}])
def test_the_status_box_covers_nothing_and_a_phone_needs_no_sideways_scroll(browser, explorer_page, viewport, tmp_path):
    context = browser.new_context(viewport=viewport, has_touch=viewport["width"] < 500)
    try:
        pg = context.new_page()
        pg.goto(explorer_page.as_uri())
        pg.wait_for_selector("body[data-ready=true]", timeout=60_000)
        height = pg.evaluate("document.documentElement.scrollHeight")
        for y in (0, 150, 600, height // 2, height):
            pg.evaluate(f"window.scrollTo(0, {y})")
            box = pg.locator("#self-test-box").bounding_box()
            for other in ("h1", "header > p", "h2 >> nth=0", "#draw"):
                assert not _overlaps(box, pg.locator(other).bounding_box()), (y, other)
        assert pg.evaluate("getComputedStyle(document.getElementById('self-test-box')).position") == "static"
        # no horizontal overflow, however long the captions and tables get
        pg.select_option("#digit", "8")
        pg.evaluate("explorer.settled()")
        width = viewport["width"]
        assert pg.evaluate("document.documentElement.scrollWidth") <= width
        wide = pg.evaluate(f"""() => [...document.querySelectorAll('canvas, figure, table, .controls, .bar')]
            .filter((el) => {{ const r = el.getBoundingClientRect(); return r.width > 0 && r.right > {width} + 0.5
                 && !el.closest('.scroll'); }}).map((el) => el.id || el.className || el.tagName)""")
        assert wide == []
        # figures do not move when a caption changes length
        where = """() => ['ddim-xt', 'ddim-x0', 'ddim-latent'].map((id) => {
            const r = document.getElementById(id).getBoundingClientRect();
            return [r.left + window.scrollX, r.top + window.scrollY]; })"""
        before = pg.evaluate(where)
        pg.focus("#ddim-scrub")
        pg.keyboard.press("Home")  # the captions now name step 0's t, longer than "the end (x_0)"
        pg.evaluate("explorer.settled()")
        assert pg.evaluate(where) == before
        pg.screenshot(path=str(tmp_path / f"explorer-{width}.png"), full_page=True)
    finally:
        context.close()
