"""What an experiment's part of the report holds, and the verdict helpers its rule is written with.

Each experiment module defines ``section(run) -> Section``: its claim, the rule that turns its
numbers into a verdict, its tables and figures.  This module holds the plain data those
builders return and the small helpers they share (reading a summary defensively, formatting,
the line a stored ``connlab.evidence`` comparison prints).  It knows no HTML: ``connlab.report`` renders it.

A number an experiment did not write reads as "not measured" and its verdict says so; any
other exception in a builder is a bug and propagates.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from connlab.evidence import CONTRADICTED, NOT_SUPPORTED, SUPPORTED  # noqa: F401 - the section builders' words
from connlab.experiments.registry import REGISTRY
from connlab.runs import config_from_json, read_json_object, read_run
from connlab.evidence import Evidence, Reproduction

# The verdict words of an interval (SUPPORTED, NOT_SUPPORTED, CONTRADICTED) are connlab.evidence's,
# imported above for the section builders; the words below are the report's own.
NOT_MEASURED = "not measured"
PARTLY = "partly supported"
NO_INTERVALS = "not measured with intervals — rerun"
INCONCLUSIVE = "inconclusive: the models did not learn at this budget"
SCREENSHOT = "report_screenshot.png"   # written by the browser test beside a report; never a figure


# --- a run folder, as the report reads it --------------------------------------------------------

@dataclass
class Run:
    folder: Path
    experiment: str
    config: dict
    summary: dict            # {} when the run has not finished
    extra: dict = field(default_factory=dict)   # other JSON files of the folder, e.g. eval.json


def load_run(folder: Path) -> Run:
    """A run folder, or a UserError naming what is wrong with it."""
    folder = Path(folder)
    saved = read_run(folder)
    entry = REGISTRY.get(saved.experiment)
    if entry is not None and entry.config_class is not None:  # each saved value as its flag would take it
        config_from_json(entry.config_class, saved.config, folder / "config.json")
    extra = {}
    for name in ("eval.json",):
        if (folder / name).is_file():
            extra[name] = read_json_object(folder / name)
    # no summary.json: the run did not finish; a damaged one is an error naming it, not "did not finish"
    return Run(folder, saved.experiment, saved.config, read_json_object(folder / "summary.json", {}), extra)


def read_json(path: Path) -> dict:
    """A JSON object from ``path``, or {} when the file is missing, unreadable or not an object."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


# --- reading numbers defensively ------------------------------------------------------------------

def get(data, *path, default=None):
    """``data[path[0]][path[1]]...`` or ``default`` when any step is missing."""
    for key in path:
        if isinstance(data, dict) and key in data:
            data = data[key]
        elif isinstance(data, (list, tuple)) and isinstance(key, int) and -len(data) <= key < len(data):
            data = data[key]
        else:
            return default
    return data


def num(data, *path) -> float | None:
    """The finite number at ``path``, or None."""
    value = get(data, *path)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def fmt(value, spec: str = ".4f", suffix: str = "") -> str:
    if value is None:
        return NOT_MEASURED
    return f"{value:{spec}}{suffix}"


def pm(mean, std, spec: str = ".4f") -> str:
    if mean is None:
        return NOT_MEASURED
    return fmt(mean, spec) + (f" ± {std:{spec}}" if std else "")


def pct(x):
    return None if x is None else 100 * x


# --- what a section holds --------------------------------------------------------------------------

@dataclass
class Table:
    header: list[str]
    rows: list[list[str]]
    caption: str = ""


@dataclass
class Section:
    experiment: str
    title: str
    claim: str
    verdict: str                 # SUPPORTED / PARTLY / NOT_SUPPORTED / CONTRADICTED / NOT_MEASURED / INCONCLUSIVE
    verdict_text: str
    figures: list[tuple[str, Path]] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    folder: Path | None = None
    rule: str = ""               # the verdict's rule, written before the numbers ("rule: ..." on the page)
    effect: str = ""             # the effect with its interval and n, for the summary table ("" = none)
    sentence: str = ""           # the verdict in one plain sentence a student can repeat (``sentence``); the page
                                 # opens the verdict box with it, the explorer may quote it
    captions: dict[str, str] = field(default_factory=dict)   # figure file name -> its caption sentence


def with_figures(sec: Section, run: Run, names=()) -> Section:
    """The named figures first (in that order), then any other PNG of the folder. ``names`` may be a dict
    {file name: caption sentence}: the captions go to ``sec.captions``."""
    if isinstance(names, dict):
        sec.captions.update(names)
    seen = []
    for name in names:
        if (run.folder / name).is_file() and name not in seen:
            seen.append(name)
    for path in sorted(run.folder.glob("*.png")):
        if path.name not in seen and path.name != SCREENSHOT:
            seen.append(path.name)
    sec.figures = [(name, run.folder / name) for name in seen]
    sec.folder = run.folder
    return sec


def generic_section(run: Run) -> Section:
    """The section of an experiment that states no claim: its summary's scalar values."""
    rows = [[k, fmt(float(v), ".4g") if isinstance(v, (int, float)) and not isinstance(v, bool) else str(v)]
            for k, v in run.summary.items() if isinstance(v, (int, float, str, bool))][:20]
    return with_figures(Section(run.experiment, f"connlab {run.experiment}", "(no lecture claim attached)",
                                NOT_MEASURED, "no verdict for this experiment",
                                tables=[Table(["key", "value"], rows)],
                                sentence="This experiment states no lecture claim, so there is no verdict: "
                                         "its numbers are below."), run)


# --- verdict rules shared by several experiments ---------------------------------------------------

def stored(data, *path):
    """The ``connlab.evidence.Evidence`` stored at ``path`` of a summary (as ``Evidence.as_dict()``), or None
    when it is missing or malformed: a run folder written before intervals were stored."""

    value = get(data, *path) if path else data
    if not isinstance(value, dict):
        return None
    try:
        ev = Evidence.from_dict(value)
    except (TypeError, ValueError, KeyError):
        return None
    return ev if ev.verdict in (SUPPORTED, NOT_SUPPORTED, CONTRADICTED) else None


def verdict_of(ev) -> str:
    return NOT_MEASURED if ev is None else ev.verdict


def effect_text(ev, metric: str, spec: str = ".4f", unit: str = "") -> str:
    """``ev.text(...)``, or the "rerun" line for a folder without it."""
    return NO_INTERVALS if ev is None else ev.text(metric, spec, unit)


def evidence_line(value, rule: str, metric: str, *, spec: str = ".4f", unit: str = "") -> tuple[str, str]:
    """(verdict, "rule: … ; n = …; effect … [95 % CI …]") of one comparison stored in a summary as
    ``connlab.evidence.Evidence.as_dict()``. A run folder written before intervals were stored
    (missing or malformed) reads NOT_MEASURED with ``NO_INTERVALS``, never an exception."""
    ev = stored(value)
    if ev is None:
        return NOT_MEASURED, f"rule: {rule}; {NO_INTERVALS}"
    line = f"rule: {rule}; n = {ev.n}; {ev.text(metric, spec, unit)} → {ev.verdict}"
    if ev.n < 2:   # the budget that would settle it: an interval needs pairs (the demo runs 5 seeds)
        line += " (one seed gives no interval: rerun with --seeds 5)"
    return ev.verdict, line


def effect_of(value, metric: str, *, spec: str = ".4f", unit: str = "") -> str:
    """The summary table's effect line of a stored comparison ("" when there is none)."""
    ev = stored(value)
    return "" if ev is None else ev.text(metric, spec, unit)


def weakest(verdicts) -> str:
    """The verdict of a claim made of several comparisons that must all hold: the weakest one."""
    order = (CONTRADICTED, NOT_MEASURED, INCONCLUSIVE, NOT_SUPPORTED, PARTLY, SUPPORTED)
    verdicts = list(verdicts)
    return min(verdicts, key=order.index) if verdicts else NOT_MEASURED


def combine(*verdicts: str) -> str:
    """A claim of several parts where each part teaches something on its own: all supported -> supported;
    some -> partly supported; none: contradicted when a part is, "not measured" when no part was, else not
    supported at this budget. (``weakest`` is for parts that must all hold.)"""
    if all(v == SUPPORTED for v in verdicts):
        return SUPPORTED
    if any(v in (SUPPORTED, PARTLY) for v in verdicts):
        return PARTLY
    if CONTRADICTED in verdicts:
        return CONTRADICTED
    return NOT_MEASURED if all(v == NOT_MEASURED for v in verdicts) else NOT_SUPPORTED


def target(value, goal: float, metric: str) -> tuple[str, str]:
    """Supported when ``value`` reaches ``goal`` (fractions, shown as percentages)."""
    if value is None:
        return NOT_MEASURED, f"{metric} was not measured"
    if value >= goal:
        return SUPPORTED, f"{metric} {value:.2%} reaches the target {goal:.0%}"
    return NOT_SUPPORTED, f"{metric} {value:.2%} is below the target {goal:.0%}"


def checks_verdict(checks: dict) -> tuple[str, str]:
    """Several yes/no checks (None: not measured): all yes -> supported, some -> partly, none -> not."""
    known = {k: v for k, v in checks.items() if v is not None}
    if not known:
        verdict = NOT_MEASURED
    elif all(known.values()) and len(known) == len(checks):
        verdict = SUPPORTED
    elif any(known.values()):
        verdict = PARTLY
    else:
        verdict = NOT_SUPPORTED
    text = "; ".join(f"{k}: {'yes' if v else 'no' if v is not None else NOT_MEASURED}" for k, v in checks.items())
    return verdict, text


# --- "course vs ours": a published single run against our seeds (connlab.evidence.reproduction) -----

REPRODUCTION_HEADER = ["", "course (one run)", "ours: mean", "ours: one run, 95 % prediction interval", "n",
                       "verdict", "gap"]
MAX_SETTLE = 1000   # seeds beyond which "what n would settle it" says "more than"


def stored_reproduction(value):
    """The ``connlab.evidence.Reproduction`` stored as ``as_dict()`` (or given), or None when missing/malformed."""
    if isinstance(value, Reproduction):
        return value
    if not isinstance(value, dict):
        return None
    from dataclasses import fields

    try:  # a stored row may carry more keys (its source): the Reproduction's own are read
        return Reproduction.from_dict({f.name: value[f.name] for f in fields(Reproduction)})
    except (TypeError, ValueError, KeyError):
        return None


def reproduction_row(label: str, value, spec: str = ".4f") -> list[str]:
    """One "course vs ours" row (``REPRODUCTION_HEADER``): the course's figure, our mean, the interval for
    one run, n, the verdict and the gap (how far the course's figure lies outside the interval)."""
    rep = stored_reproduction(value)
    if rep is None:
        return [label, NOT_MEASURED, NOT_MEASURED, NOT_MEASURED, "", NOT_MEASURED, ""]
    f = lambda v: format(v, spec)  # noqa: E731
    if math.isnan(rep.low):
        interval, gap = f"no interval (n = {rep.n})", ""
    else:
        interval = f"{f(rep.low)} to {f(rep.high)}"
        gap = ("inside" if rep.gap == 0 else
               f"{f(abs(rep.gap))} {'above' if rep.gap > 0 else 'below'} the interval")
    return [label, f(rep.published), f(rep.mean), interval, str(rep.n), rep.verdict, gap]


def _t(n: int) -> float:
    from scipy import stats

    return float(stats.t.ppf(0.975, n - 1))


def reproduction_settles(value) -> str:
    """What n would settle a reproduction verdict, if our mean and spread stay as measured.

    The prediction interval for one run, mean ± t(n−1)·s·√(1 + 1/n), narrows with n towards
    mean ± 1.96 s: a course figure further than that from our mean turns *not reproduced* at some n;
    one nearer stays reproduced at every n.
    """
    rep = stored_reproduction(value)
    if rep is None:
        return ""
    if math.isnan(rep.low):
        return f"n = {rep.n} gives no interval: --seeds 5 or more settles it"
    half = (rep.high - rep.low) / 2
    s = half / (_t(rep.n) * math.sqrt(1 + 1 / rep.n))
    distance = abs(rep.published - rep.mean)
    if distance <= 1.959964 * s:
        return (f"settled at n = {rep.n}: at this mean and spread the course's figure stays inside the "
                f"interval for every n")
    first = next((m for m in range(2, MAX_SETTLE + 1) if distance > _t(m) * s * math.sqrt(1 + 1 / m)), None)
    if first is None:
        return f"at this mean and spread, more than {MAX_SETTLE:,} seeds would settle it"
    if first <= rep.n:
        return f"settled at n = {rep.n}"
    return f"not settled at n = {rep.n}: at this mean and spread, n = {first} would make it not reproduced"


def comparison_settles(value) -> str:
    """What n would settle a paired comparison (``connlab.evidence.compare``), if its effect and spread stay
    as measured: the smallest n whose t interval, effect ± t(n−1)·s/√n, excludes 0."""
    ev = stored(value)
    if ev is None:
        return ""
    if ev.n < 2 or math.isnan(ev.low):
        return f"n = {ev.n} gives no interval: --seeds 5 or more settles it"
    s = (ev.high - ev.low) / 2 * math.sqrt(ev.n) / _t(ev.n)
    if ev.effect == 0:
        return "no effect measured: no n settles it"
    first = next((m for m in range(2, MAX_SETTLE + 1) if abs(ev.effect) > _t(m) * s / math.sqrt(m)), None)
    if first is None:
        return f"at this effect and spread, more than {MAX_SETTLE:,} seeds would settle it"
    if first <= ev.n:
        return f"settled at n = {ev.n}"
    return f"not settled at n = {ev.n}: at this effect and spread, n = {first} would settle it"
