"""What an experiment's part of the report holds, and the verdict helpers its rule is written with.

Each experiment module defines ``section(run) -> Section``: its claim, the rule that turns its
numbers into a verdict, its tables and figures.  This module holds the plain data those
builders return and the small helpers they share (reading a summary defensively, formatting,
the one "beyond the seed spread" rule).  It knows no HTML: ``connlab.report`` renders it.

A number an experiment did not write reads as "not measured" and its verdict says so; any
other exception in a builder is a bug and propagates.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

NOT_MEASURED = "not measured"
SUPPORTED, PARTLY, NOT_SUPPORTED = "supported", "partly supported", "not supported at this budget"
UNKNOWN = NOT_MEASURED
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
    from connlab.errors import UserError
    from connlab.runs import read_config

    folder = Path(folder)
    saved = read_config(folder)
    experiment = saved.get("experiment")
    if not isinstance(experiment, str):
        raise UserError(f"{folder}: not a connlab run folder (config.json names no experiment)")
    extra = {}
    for name in ("eval.json",):
        if (folder / name).is_file():
            extra[name] = read_json(folder / name)
    return Run(folder, experiment, saved.get("config") or {}, read_json(folder / "summary.json"), extra)


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
    verdict: str                 # SUPPORTED / PARTLY / NOT_SUPPORTED / UNKNOWN / INCONCLUSIVE
    verdict_text: str
    figures: list[tuple[str, Path]] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    folder: Path | None = None
    rule: str = ""               # the verdict's rule, written before the numbers ("rule: ..." on the page)
    effect: str = ""             # the effect with its interval and n, for the summary table ("" = none)


def with_figures(sec: Section, run: Run, names=()) -> Section:
    """The named figures first (in that order), then any other PNG of the folder."""
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
    return with_figures(Section(run.experiment, f"connlab {run.experiment}", "(no lecture claim attached)", UNKNOWN,
                                "no verdict for this experiment", tables=[Table(["key", "value"], rows)]), run)


# --- verdict rules shared by several experiments ---------------------------------------------------

def beyond_seed_spread(mean_a: float, std_a: float, mean_b: float, std_b: float, seeds) -> bool | None:
    """The lab's one rule for "a real difference between two variants trained over seeds":
    |mean_a - mean_b| > std_a + std_b (the two one-sigma bands do not overlap).

    None when there is no spread to compare with (fewer than two seeds, or a std missing).
    """
    if not isinstance(seeds, int) or seeds < 2 or std_a is None or std_b is None:
        return None
    return abs(mean_a - mean_b) > std_a + std_b


def compare(base, base_std, new, new_std, seeds, metric: str, *, higher_is_better: bool, what: str = "",
            scale: float = 1.0, unit: str = "") -> tuple[str, str]:
    """Verdict of ``new`` vs ``base`` (means ± std over seeds) by ``beyond_seed_spread``."""
    if base is None or new is None:
        return UNKNOWN, f"{metric} was not measured for both variants"
    spec = ".2f" if scale != 1 else ".4f"
    before, after = pm(base * scale, (base_std or 0) * scale, spec), pm(new * scale, (new_std or 0) * scale, spec)
    text = f"{what + ' ' if what else ''}changed {metric} from {before}{unit} to {after}{unit} over {seeds} seed(s)"
    better = new > base if higher_is_better else new < base
    beyond = beyond_seed_spread(base, base_std, new, new_std, seeds)
    if beyond is None:
        return (PARTLY if better else NOT_SUPPORTED), text + "; one seed, so no spread to compare with"
    if better and beyond:
        return SUPPORTED, text + " — better, beyond the seed spread"
    if better:
        return PARTLY, text + " — better, but within the seed spread"
    return NOT_SUPPORTED, text + " — not better"


def target(value, goal: float, metric: str) -> tuple[str, str]:
    """Supported when ``value`` reaches ``goal`` (fractions, shown as percentages)."""
    if value is None:
        return UNKNOWN, f"{metric} was not measured"
    if value >= goal:
        return SUPPORTED, f"{metric} {value:.2%} reaches the target {goal:.0%}"
    return NOT_SUPPORTED, f"{metric} {value:.2%} is below the target {goal:.0%}"


def checks_verdict(checks: dict) -> tuple[str, str]:
    """Several yes/no checks (None: not measured): all yes -> supported, some -> partly, none -> not."""
    known = {k: v for k, v in checks.items() if v is not None}
    if not known:
        verdict = UNKNOWN
    elif all(known.values()) and len(known) == len(checks):
        verdict = SUPPORTED
    elif any(known.values()):
        verdict = PARTLY
    else:
        verdict = NOT_SUPPORTED
    text = "; ".join(f"{k}: {'yes' if v else 'no' if v is not None else NOT_MEASURED}" for k, v in checks.items())
    return verdict, text
