"""``explorer.html``: one self-contained page with the runtime, the models and a few test digits inside.

The page opens from ``file://`` with no network: onnxruntime-web's ``ort.wasm.bundle.min.mjs``
is embedded as base64 text and imported from a ``blob:`` URL; its WASM binary is embedded
gzipped and base64-encoded, unpacked in the page with ``DecompressionStream('gzip')`` and
handed to ``ort.env.wasm.wasmBinary`` (single thread, no proxy worker); each model is passed
to ``InferenceSession.create`` as bytes.  The page's own script, style and markup are package
files next to this module (``web/``): the script is small ES modules under ``web/js/`` (runtime,
drawing, the drawing input, one module per panel, ``main.js``), joined into the page's one
``<script type="module">`` by ``assemble_script``.

The manifest (the JSON the page embeds) lists the panels in order (``parts()``: part, heading,
section, models, settings), the parts left out, the links to the report, and every number the page needs
from the lab's maths (the DDIM time steps, ᾱ_t, the ladder's coefficients: ``export.py``), so the
page never re-implements them.

A panel with a ``course`` entry in the registry (the autoencoders, the ladder) has two settings: the lab's
run and the course's (``--preset course``, folder ``NAME-course``). Where the folder holds both, the page
shows a switch; the course's models are named ``course_<name>`` and each setting links to its own report
section (the report's ids: ``report.page.anchors``) with its verdict sentence.

A part whose run folder is missing, or whose run part cannot be read (a ``UserError`` naming the
file: no weights, a corrupt config), is left out; the page and the command's output say which
command makes it.  Any other exception while exporting a part is a bug: the other parts are still
exported and the page written, then ``ExportFailed`` (chained to the first such exception, so its
traceback shows) makes ``connlab explore`` exit non-zero.
"""

from __future__ import annotations

import base64
import gzip
import json
import re
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from connlab.checkpoint import atomic_write_text, check_output
from connlab.data import load_dataset
from connlab.errors import UserError
from connlab.experiments import lecture_order
from connlab.experiments.section import load_run
from connlab.explore import export as ex
from connlab.report.page import anchors, build_section
from connlab.runs import make_folder, read_run

WEB = Path(__file__).parent / "web"
RUNTIME = WEB / "node_modules" / "onnxruntime-web" / "dist"
RUNTIME_FILES = ("ort.wasm.bundle.min.mjs", "ort-wasm-simd-threaded.wasm")


class ExportFailed(Exception):
    """A part's export raised something other than a UserError (a bug); the page holds the other parts."""


@dataclass(frozen=True)
class Part:
    experiment: str          # the ``experiment`` in the run's config.json
    title: str
    command: str             # what makes the run, for the "left out" line
    export: Callable         # run folder -> list[ExportedModel]
    section: str = ""        # the page's <section id> of its panel (web/explorer.html)
    report: str = ""         # its section in report.html (the <h2 id>, the experiment's Section name)
    course: str = ""         # what makes the ``--preset course`` run the panel also shows ("": none)

    def settings(self) -> list[tuple[str, str, str]]:
        """(setting, key in ``find_runs``, command) of each setting the panel can show: the lab's, the course's."""
        lab = [(LAB, self.experiment, self.command)]
        return lab + [(COURSE, course_key(self.experiment), self.course)] if self.course else lab


TOY = "toy_attention"   # the panel of an `attention --preset course` run (its Panel.part in the registry)
LAB, COURSE = "lab", "course"   # a panel's settings: the lab's run, and the course's (made with --preset course)
SETTING_NAMES = {LAB: "the lab's setting", COURSE: "the course's exercise"}
SETTING_LABELS = {LAB: SETTING_NAMES[LAB], COURSE: f"{SETTING_NAMES[COURSE]}, --preset course"}  # the page's switch


def course_key(part: str) -> str:
    """``find_runs``' key of a panel's course-preset run."""
    return f"{part}:{COURSE}"


def model_name(name: str, setting: str) -> str:
    """A model's name in the page: the course's setting's models carry a prefix (``course_ae_none``)."""
    return name if setting == LAB else f"{setting}_{name}"


def parts() -> list[Part]:
    """The live panels, in the lecture's order: each registry entry's ``panels``."""
    return [_part(e.name, p) for e in lecture_order() for p in e.panels]


def _part(command: str, p) -> Part:
    folder = p.folder or command   # the run's folder in a demo folder, and so its section in report.html
    course = " ".join(["connlab", command, *p.course, "--out", f"DIR/{command}-course"]) if p.course else ""
    return Part(p.part, p.title, " ".join(["connlab", command, *p.make, "--out", f"DIR/{folder}"]),
                getattr(ex, p.export), p.element, folder, course)


def report_only() -> list[tuple[str, str]]:
    """(report section, what it shows) of the lecture's parts that have no live panel."""
    return [(e.name, e.help) for e in lecture_order() if not e.panels]


# --- the page's script: ES modules joined into one <script type="module"> -------------------------------
#
# Why a small joiner rather than an import map of data:/blob: URLs: the modules keep their own scopes
# here as they would in a browser (each becomes a function whose return value is its exports, in
# dependency order), the page keeps one inline script under the same CSP (no data: scripts allowed),
# a relative import from a data: module cannot be resolved (a data: URL is no base URL), and a browser
# without import-map support would still run it.  The price is a narrow grammar, checked here: imports
# are ``import { a, b as c } from "./x.js";`` and exports are ``export function|async function|const|class``
# declarations; nothing is exported as ``let`` (a copied binding would not follow reassignment).

IMPORT = re.compile(r'^import\s*\{([^}]*)\}\s*from\s*"(\.{1,2}/[^"]+\.js)";[ \t]*$', re.M)
EXPORT = re.compile(r"^export\s+(?:async\s+function\*?|function\*?|const|class)\s+([A-Za-z_$][\w$]*)", re.M)


def _module_name(path: Path, root: Path) -> str:
    return "module_" + re.sub(r"\W", "_", path.relative_to(root).as_posix())


def assemble_script(root: Path = WEB / "js", entry: str = "main.js") -> str:
    """The modules reachable from ``root/entry``, each in its own function scope, dependencies first."""
    root = Path(root).resolve()
    ordered: list[tuple[Path, str]] = []
    visiting: list[Path] = []

    def visit(path: Path) -> None:
        if any(p == path for p, _ in ordered):
            return
        if path in visiting:
            raise ValueError(f"explorer modules import each other in a cycle: "
                             f"{' -> '.join(p.name for p in visiting + [path])}")
        if not path.is_file():
            raise ValueError(f"{visiting[-1] if visiting else root}: imports {path}, which does not exist")
        visiting.append(path)
        text = path.read_text()
        body = text
        for match in IMPORT.finditer(text):
            dep = (path.parent / match.group(2)).resolve()
            visit(dep)
            names = [n.strip() for n in match.group(1).split(",") if n.strip()]
            pattern = ", ".join(n.replace(" as ", ": ") if " as " in n else n for n in names)
            body = body.replace(match.group(0), f"const {{ {pattern} }} = {_module_name(dep, root)};", 1)
        exports = EXPORT.findall(body)
        body = EXPORT.sub(lambda m: m.group(0)[len("export"):].lstrip(), body)
        leftover = re.search(r"^\s*(import|export)\b.*$", body, re.M)
        if leftover:
            raise ValueError(f"{path}: {leftover.group(0).strip()!r} is not a form assemble_script joins "
                             "(named imports from a relative .js path; exported function, const or class)")
        visiting.pop()
        name = _module_name(path, root)
        ordered.append((path, f"// --- {path.relative_to(root).as_posix()}\nconst {name} = (() => {{\n{body.rstrip()}\n"
                              f"return {{ {', '.join(exports)} }};\n}})();\n"))

    visit(root / entry)
    script = "\n".join(text for _, text in ordered)
    if re.search(r"</script", script, re.I):  # would end the page's <script> element early
        raise ValueError(f"{root}: a module contains '</script'; write it as '<\\/script'")
    return script


def runtime_files() -> dict[str, bytes]:
    """The pinned onnxruntime-web files, or a UserError naming the command that installs them."""
    missing = [name for name in RUNTIME_FILES if not (RUNTIME / name).is_file()]
    if missing:
        raise UserError(f"onnxruntime-web is not installed ({RUNTIME / missing[0]} missing); "
                        f"run: npm ci --prefix {WEB}")
    return {name: (RUNTIME / name).read_bytes() for name in RUNTIME_FILES}


def check_exporter() -> None:
    """torch.onnx's dynamo exporter needs onnx and onnxscript (the ``explore`` extra)."""
    import importlib.util

    for name in ("onnx", "onnxscript"):
        if importlib.util.find_spec(name) is None:
            raise UserError(f"exporting the models needs the Python package {name!r}; "
                            f"run: pip install 'connlab[explore]'")


def find_runs(run_dir: Path) -> dict[str, Path]:
    """Panel key -> run folder: ``run_dir`` itself (one run) or its subfolders (a demo folder). The key is the
    panel's part, or ``course_key(part)`` for a ``--preset course`` run of a panel that shows both settings."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"{run_dir}: no such run folder")
    candidates = [run_dir] if (run_dir / "config.json").is_file() else sorted(
        p for p in run_dir.iterdir() if (p / "config.json").is_file())
    if not candidates:
        raise UserError(f"{run_dir}: not a connlab run folder (no config.json in it or its subfolders)")
    known = {p.experiment for p in parts()}
    with_course = {p.experiment for p in parts() if p.course}
    found: dict[str, Path] = {}
    for folder in candidates:
        saved = read_run(folder)
        key = experiment = saved.experiment
        if experiment == "attention" and saved.config.get("task") == "toy":
            key = experiment = TOY  # the course's toy head: its own panel, beside the sequence task's
        elif experiment in with_course and saved.config.get("preset") == COURSE:
            key = course_key(experiment)  # the course's exercise: the same panel, its other setting
        if experiment in known and (key not in found or folder.name in (experiment, f"{experiment}-course")):
            found[key] = folder
    if not found and candidates == [run_dir]:
        experiment = read_run(run_dir).experiment
        raise UserError(f"{run_dir}: a {experiment!r} run has no model the explorer shows; "
                        f"give a demo folder or a run of one of: {', '.join(sorted(known))}")
    return found


def test_digits(count_per_class: int = 1) -> list[dict]:
    """The first test digit of each class from the embedded MNIST subset: label and 784 bytes."""
    import numpy as np


    data = load_dataset("mnist-embedded")
    labels = data.test_labels.cpu().numpy()
    images = data.test_images.cpu().numpy().astype(np.uint8)
    digits = []
    for label in range(10):
        for i in np.flatnonzero(labels == label)[:count_per_class]:
            digits.append({"label": int(label), "pixels": b64(images[i].reshape(-1).tobytes())})
    return digits


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def tensor_json(array) -> dict:
    import numpy as np

    array = np.ascontiguousarray(array)
    kind = {"float32": "float32", "int64": "int64"}[str(array.dtype)]
    return {"type": kind, "dims": list(array.shape), "data": b64(array.tobytes())}


def model_json(model) -> dict:
    return {"onnx": b64(model.onnx), "info": model.info,
            "inputs": {k: tensor_json(v) for k, v in model.inputs.items()},
            "outputs": {k: tensor_json(v) for k, v in model.outputs.items()}}


def collect(run_dir: Path, log=print) -> tuple[dict, list[dict], list[str], list[tuple[str, Exception]]]:
    """Export every part found, in each setting it has a run of: (models by name, parts left out, export
    errors, (title, exception) of each export that raised something other than a UserError)."""
    runs = find_runs(run_dir)
    # the folder the missing parts' commands write into: the demo folder, or the one run's parent
    base = str(run_dir.parent if (run_dir / "config.json").is_file() else run_dir)
    models, left_out, errors, bugs = {}, [], [], []
    for part in parts():
        shown, whys, missing = 0, [], []
        for setting, key, command in part.settings():
            folder = runs.get(key)
            if folder is None:
                whys.append(f"no {part.experiment}{' --preset course' if setting == COURSE else ''} run in {run_dir}")
                missing.append(f"no run of {SETTING_NAMES[setting]} in {run_dir} (make it with: "
                               f"{command.replace('DIR', base)})")
                continue
            exported, why = _export(part, folder, bugs, log)
            if not exported:
                message = f"{part.title} ({folder}): could not export — {why}"
                errors.append(message)
                whys.append(why)
                log(f"explore: {message}")
                continue
            shown += 1
            for model in exported:
                name = model_name(model.name, setting)
                models[name] = model_json(model) | {"part": part.experiment, "setting": setting, "run": str(folder)}
            log(f"explore: {part.title}: {', '.join(model_name(m.name, setting) for m in exported)} from {folder}")
        command = part.command.replace("DIR", base)
        if not shown:
            left_out.append({"part": part.experiment, "title": part.title, "why": "; ".join(whys),
                             "command": command})
            log(f"explore: left out {part.title}: {'; '.join(whys)}; make it with: {command}")
        elif missing:
            log(f"explore: {part.title}: {'; '.join(missing)}")
    return models, left_out, errors, bugs


def _export(part: Part, folder: Path, bugs: list, log) -> tuple[list, str]:
    """The part's models from one run folder, or ([], why); a bug is logged and added to ``bugs``."""
    try:
        exported = part.export(folder)
    except UserError as err:  # a missing or unreadable run part, named by the error
        return [], str(err)
    except Exception as err:  # a bug: keep exporting the others, then fail (write_explorer raises)
        log(traceback.format_exc().rstrip())
        bugs.append((part.title, err))
        return [], f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err) else ''}"
    return exported, f"{folder} holds no trained {part.experiment} model"


def panels(models: dict, links: dict[str, dict] | None = None) -> list[dict]:
    """The page's panels in order: part, heading, section id, its settings (each with its models, its report
    section and the verdict sentence that section opens with), and the first shown setting's report section,
    verdict and the models of every setting."""
    links = links or {}
    out = []
    for p in parts():
        settings = []
        for setting, key, _ in p.settings():
            names = [name for name, m in models.items() if m["part"] == p.experiment and m["setting"] == setting]
            if names:
                link = links.get(key, {})
                settings.append({"setting": setting, "label": SETTING_LABELS[setting], "models": names,
                                 "report": link.get("report", p.report), "verdict": link.get("verdict", "")})
        first = settings[0] if settings else {"report": p.report, "verdict": ""}
        out.append({"part": p.experiment, "title": p.title, "section": p.section, "report": first["report"],
                    "verdict": first["verdict"], "settings": settings,
                    "models": [name for s in settings for name in s["models"]]})
    return out


def report_links(run_dir: Path) -> dict[str, dict]:
    """Panel key -> {"report": its run's section id in report.html, "verdict": the plain sentence that section
    opens the verdict with} — the same words and ids as the report (``connlab.report.page``)."""
    keys, sections = [], []
    for key, folder in find_runs(run_dir).items():
        try:
            sections.append(build_section(load_run(folder)))
        except UserError:   # a damaged run part: collect() names it, and the panel shows no verdict
            continue
        keys.append(key)
    return {key: {"report": anchor, "verdict": sec.sentence}
            for key, sec, anchor in zip(keys, sections, anchors(sections))}


def write_explorer(run_dir: Path, out: Path | None = None, log=None) -> Path:
    """Write ``explorer.html`` for the runs in ``run_dir`` (default ``run_dir/explorer.html``); returns its path."""
    log = log or (lambda line: print(line, file=sys.stderr))
    run_dir = Path(run_dir)
    out = Path(out) if out is not None else run_dir / "explorer.html"
    find_runs(run_dir)          # a folder that is not a run is the user's first error to hear about
    check_output(out, "--out")  # an --out that cannot be written (or a folder), before minutes of export work
    runtime = runtime_files()   # then what set-up must install, before any export work
    check_exporter()
    models, left_out, errors, bugs = collect(run_dir, log)
    manifest = {"panels": panels(models, report_links(run_dir)), "models": models, "left_out": left_out, "export_errors": errors,
                "report": [{"section": name, "what": what} for name, what in report_only()],
                "digits": test_digits(), "run_dir": str(run_dir)}
    html = (WEB / "explorer.html").read_text()
    fill = {
        "STYLE": (WEB / "explorer.css").read_text(),
        "SCRIPT": assemble_script(),
        "RUNTIME_MJS": b64(runtime["ort.wasm.bundle.min.mjs"]),
        "RUNTIME_WASM_GZ": b64(gzip.compress(runtime["ort-wasm-simd-threaded.wasm"], mtime=0)),
        "MANIFEST": json.dumps(manifest, separators=(",", ":")).replace("</", "<\\/"),
    }
    # one pass over the template, so a filled-in text is never searched for the next placeholder
    html = re.sub(r"@@([A-Z_]+)@@", lambda m: fill[m.group(1)], html)
    atomic_write_text(out, html)
    log(f"explore: {out} ({out.stat().st_size / 1e6:.1f} MB, {len(models)} model{'s' if len(models) != 1 else ''}"
        + (f"; left out: {', '.join(p['part'] for p in left_out)}" if left_out else "") + ")")
    if bugs:
        raise ExportFailed(f"{out} was written without {', '.join(title for title, _ in bugs)}: exporting "
                           "raised an unexpected error (traceback above)") from bugs[0][1]
    return out
