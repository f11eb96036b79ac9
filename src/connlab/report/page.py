"""``report.html``: the run folders' sections, in the lecture's order, as one self-contained page.

The page reads run folders only (config.json, summary.json, eval.json, *.png; and, for a demo
folder, demo.json), so it can be rebuilt at any time without training anything.  Each
experiment's ``section(run)`` (listed in ``connlab.experiments.REGISTRY``) gives the lecture's
claim, its verdict from the numbers, tables and figures; this module only renders them.
Everything is inside the one file: figures are base64 ``data:`` URIs, the style sheet is
inline, and the only script is a small inline self-check (it writes, into the page, whether
every image decoded and whether anything was logged as an error) that the browser test reads.

A run without summary.json gets a section that says it did not finish; an exception in a
section builder is a bug and propagates (it is not shown as "not measured").
"""

from __future__ import annotations

import base64
import html
import json
import platform
import time
from pathlib import Path

from connlab.experiments.section import (CONTRADICTED, INCONCLUSIVE, NOT_MEASURED, NOT_SUPPORTED, PARTLY, SUPPORTED,
                                         Run, Section, Table, fmt, generic_section, load_run, num, with_figures)
from connlab.report.sidebyside import write_side_by_side
from connlab.report.style import SELF_CHECK, STYLE
from connlab.experiments import REGISTRY, lecture_order
from connlab import __version__
from connlab.checkpoint import atomic_write_text
from connlab.runs import make_folder


def build_section(run: Run) -> Section:
    """The run's section from its experiment's registered builder (a generic one for others)."""
    if not run.summary:
        sec = Section(run.experiment, f"connlab {run.experiment}", "", NOT_MEASURED,
                      "the run has no summary.json (it did not finish; continue it with --resume)",
                      sentence="This run did not finish (it has no summary.json), so its claim was not measured: "
                               "continue it with --resume.")
        return with_figures(sec, run)
    entry = REGISTRY.get(run.experiment)
    builder = entry.section_builder if entry is not None else None
    sec = (builder or generic_section)(run)
    sec.folder = run.folder
    return sec


def lecture_rank(experiment: str) -> int:
    """Sort key: the experiment's place in the lecture; experiments outside it come last."""
    order = [e.name for e in lecture_order()]
    return order.index(experiment) if experiment in order else len(order)


VERDICT_CLASS = {SUPPORTED: "supported", PARTLY: "partly", NOT_SUPPORTED: "not", NOT_MEASURED: "unknown",
                 INCONCLUSIVE: "unknown", CONTRADICTED: "not"}


def verdict_class(verdict: str) -> str:
    # a builder may word a verdict its own way ("not measured with intervals — rerun"): grey, never a crash
    return VERDICT_CLASS.get(verdict, "unknown")


def anchors(sections: list[Section]) -> list[str]:
    """Each section's id on the page: its experiment's name, or, where two sections share an experiment (the
    lab's run and the course's: ``autoencoder`` and ``autoencoder-course``), the run folder's name for the one
    whose folder is not named after the experiment; a number breaks any tie left."""
    clash = {s.experiment for s in sections if sum(t.experiment == s.experiment for t in sections) > 1}
    ids: list[str] = []
    for sec in sections:
        name = sec.experiment
        if name in clash and sec.folder is not None and Path(sec.folder).name != name:
            name = Path(sec.folder).name
        base, k = name, 2
        while name in ids:
            name, k = f"{base}-{k}", k + 1
        ids.append(name)
    return ids


def render(sections: list[Section], demo: dict | None, environment: dict, explorer: bool = False) -> str:
    e = html.escape
    ids = anchors(sections)
    out = ["<!doctype html>", '<html lang="en"><head><meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           "<title>connlab report</title>", f"<style>{STYLE}</style>", f"<script>{SELF_CHECK}</script>",
           "</head><body>", "<h1>connlab: special connections, encoder-decoders, transformers</h1>",
           '<p class="small">Every number and figure below comes from the run folders listed in each section; '
           "each verdict is computed from those numbers at the budget the runs had.</p>"]
    if explorer:
        out.append('<p class="explorer"><a href="explorer.html">Poke the trained models yourself: explorer.html</a> '
                   "(one offline page in this folder: draw a digit, noise it, watch each connection work)</p>")
    out.append('<h2>Summary</h2><div class="scroll"><table class="summary"><tr><th>part</th><th>claim</th>'
               '<th>verdict</th><th>effect [95 % CI], n</th></tr>')
    for sec, anchor in zip(sections, ids):
        out.append(f'<tr><td><a href="#{e(anchor)}">{e(sec.title)}</a></td><td>'
                   f'{e(sec.claim)}</td><td class="{verdict_class(sec.verdict)}">{e(sec.verdict)}</td>'
                   f'<td>{e(sec.effect or "—")}</td></tr>')
    out.append("</table></div>")
    for sec, anchor in zip(sections, ids):
        out.append(f'<h2 id="{e(anchor)}">{e(sec.title)}</h2>')
        if sec.claim:
            out.append(f'<p class="claim">The lecture: {e(sec.claim)}</p>')
        out.append(_verdict_html(sec))
        for note in sec.notes:
            out.append(f"<p>{e(note)}</p>")
        for table in sec.tables:
            out.append(_table_html(table))
        for name, path in sec.figures:
            caption = sec.captions.get(name) or f"A figure this run wrote ({name})."
            out.append(f'<figure><img alt="{e(caption)}" src="{_data_uri(path)}">'
                       f'<figcaption>{e(caption)} <span class="file">{e(name)}</span></figcaption></figure>')
        if sec.folder is not None:
            out.append(f'<p class="small">run folder: {e(str(sec.folder))}</p>')
    out.append("<h2 id=\"environment\">Environment and time</h2>")
    out.append(_table_html(Table(["", ""], [[k, str(v)] for k, v in environment.items()])))
    if demo and demo.get("parts"):
        rows = [[r.get("name", "?"), r.get("status", "?"), fmt(num(r, "seconds"), ".0f"),
                 fmt(num(r, "cpu_seconds"), ".0f")] for r in demo["parts"]]
        total = [sum(num(r, key) or 0 for r in demo["parts"]) for key in ("seconds", "cpu_seconds")]
        rows.append(["total" + ("" if demo.get("finished") else " (so far; the demo has not finished)"), "",
                     fmt(total[0], ".0f"), fmt(total[1], ".0f")])
        out.append(_table_html(Table(["part", "status", "wall s", "CPU s"], rows,
                                     "time each part of the demo took (CPU s: this process's CPU time)")))
    out.append(f'<pre id="self-check" class="small"></pre>')
    out.append(f'<p class="small">built {e(time.strftime("%Y-%m-%d %H:%M:%S"))} by connlab report</p>')
    out.append("</body></html>")
    return "\n".join(out)


def plain_sentence(sec: Section) -> str:
    """The sentence the verdict box opens with: the section's own (its claim's rule wrote it), else the verdict."""
    if sec.sentence:
        return sec.sentence
    return f"The verdict: {sec.verdict} (the rule and the numbers are below)."


def _verdict_html(sec: Section) -> str:
    """The verdict box: the plain sentence first, then the rule and the numbers in a collapsible block."""
    e = html.escape
    lines = [line.strip() for line in sec.verdict_text.split(" | ") if line.strip()]
    numbers = (f"<p><b>{e(sec.verdict)}</b>:</p><ul>" + "".join(f"<li>{e(line)}</li>" for line in lines) + "</ul>"
               if len(lines) > 1 else f"<p><b>{e(sec.verdict)}</b>: {e(sec.verdict_text)}</p>")
    rule = (f'<p class="rule">rule: {e(sec.rule)}' + (f"; {e(sec.effect)}" if sec.effect else "") + "</p>"
            if sec.rule else "")
    return (f'<div class="verdict {verdict_class(sec.verdict)}"><p class="sentence">{e(plain_sentence(sec))}</p>'
            f"<details><summary>the rule and the numbers</summary>{rule}{numbers}</details></div>")


def _table_html(table: Table) -> str:
    e = html.escape
    parts = ['<div class="scroll"><table>']
    if table.caption:
        parts.append(f"<caption>{e(table.caption)}</caption>")
    if any(table.header):
        parts.append("<tr>" + "".join(f"<th>{e(h)}</th>" for h in table.header) + "</tr>")
    for row in table.rows:
        parts.append("<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in row) + "</tr>")
    parts.append("</table></div>")
    return "".join(parts)


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def environment(runs: list[Run], demo: dict | None) -> dict:
    """Where the numbers came from: the runs' devices and data, and the software that made them."""
    import torch


    env = dict((demo or {}).get("environment") or {})
    devices = sorted({str(r.summary.get("device")) for r in runs if r.summary.get("device")})
    sources = sorted({f"{r.summary.get('dataset')} ({r.summary.get('data_source')})" for r in runs
                      if r.summary.get("data_source")})
    info = {"device(s) of the runs": ", ".join(devices) or NOT_MEASURED,
            "data": ", ".join(sources) or NOT_MEASURED}
    if env:
        info.update({f"demo: {k}": v for k, v in env.items()})
        info["demo options"] = json.dumps((demo or {}).get("options", {}))
        if demo.get("load_average_at_end"):
            info["demo: load average at end"] = demo["load_average_at_end"]
    info.update({"report built with connlab": __version__, "python": platform.python_version(),
                 "torch": torch.__version__, "platform": platform.platform()})
    return info


def build_report(folders: list[Path], out: Path, demo: dict | None = None) -> Path:
    """Write the page for these run folders (in the lecture's order) to ``out``; returns ``out``."""
    runs = sorted((load_run(f) for f in folders), key=lambda r: lecture_rank(r.experiment))
    sections = [build_section(r) for r in runs]
    for sec, run in zip(sections, runs):  # the chains a run stored for its own page (diffusion sample --ladder-run)
        side = write_side_by_side(run.folder)
        if side is not None:
            sec.notes.append(f"The ladder and DDPM from the same noise, every chain step by step: {side}")
    out = Path(out)
    make_folder(out.parent)
    atomic_write_text(out, render(sections, demo, environment(runs, demo), (out.parent / "explorer.html").is_file()))
    return out
