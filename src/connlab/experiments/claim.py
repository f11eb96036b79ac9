"""Reading a claim's stored ``connlab.evidence`` back for the page.

An experiment computes its comparisons when it runs and stores each ``Evidence.as_dict()`` in
summary.json; its section builder only reads them back here.  A run folder written before the
comparisons existed has none: its section says so ("not measured with intervals — rerun")
instead of inventing a verdict from the old numbers.
"""

from __future__ import annotations

from connlab.evidence import CONTRADICTED, NOT_SUPPORTED, SUPPORTED, Evidence
from connlab.experiments.section import PARTLY, UNKNOWN, get

RERUN = "not measured with intervals — rerun"


def stored(data, *path) -> Evidence | None:
    """The Evidence stored at ``path`` of a summary, or None when it is missing or malformed."""
    value = get(data, *path)
    if not isinstance(value, dict):
        return None
    try:
        ev = Evidence.from_dict(value)
    except (TypeError, ValueError, KeyError):
        return None
    return ev if ev.verdict in (SUPPORTED, NOT_SUPPORTED, CONTRADICTED) else None


def verdict_of(ev: Evidence | None) -> str:
    return UNKNOWN if ev is None else ev.verdict


def effect_text(ev: Evidence | None, metric: str, spec: str = ".4f", unit: str = "") -> str:
    """``ev.text(...)``, or the "rerun" line for a folder without it."""
    return RERUN if ev is None else ev.text(metric, spec, unit)


def combine(*verdicts: str) -> str:
    """A claim of several parts: all supported -> supported; some -> partly supported; none: contradicted
    when a part is, "not measured" when no part was, else not supported at this budget."""
    if all(v == SUPPORTED for v in verdicts):
        return SUPPORTED
    if any(v in (SUPPORTED, PARTLY) for v in verdicts):
        return PARTLY
    if CONTRADICTED in verdicts:
        return CONTRADICTED
    return UNKNOWN if all(v == UNKNOWN for v in verdicts) else NOT_SUPPORTED
