"""What grading writes: ``KEY/results.json`` per submission (Gradescope's format), ``grades.csv`` and
``overview.html`` (per notebook and check: who passed, the most common mistake sentences) for all."""

from __future__ import annotations

import csv
import html
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from connlab.grade.score import Graded
COMMON = 3   # mistake sentences shown per check
STYLE = ("body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
         "h2{border-top:1px solid #ddd;padding-top:1em}table{border-collapse:collapse;margin:.6em 0;font-size:.92em}"
         "td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}ul{margin:0;padding-left:1.2em}"
         ".small{color:#666;font-size:.85em}")


@dataclass
class Submission:
    key: str           # the folder under --out: unique, from the file's path
    student: str
    notebook: str      # the release it answers
    path: Path
    graded: Graded
    seconds: float


def results(sub: Submission) -> dict:
    """Gradescope's results.json: score, the tests (name, score, max_score, status, output), the notes."""
    g = sub.graded
    return {
        "score": round(g.score, 6), "max_score": round(g.max_score, 6),
        "execution_time": round(sub.seconds, 1),
        "output": "\n".join(g.notes) if g.notes else "every cell ran",
        "tests": [{"name": t.name, "score": t.score, "max_score": t.max_score, "status": t.status,
                   "output": t.output} for t in g.tests],
        "student": sub.student, "notebook": sub.notebook, "submission": str(sub.path),
    }


def write_results(out: Path, sub: Submission) -> Path:
    path = out / sub.key / "results.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results(sub), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def write_csv(out: Path, subs: list[Submission]) -> Path:
    """One row per submission; one column per check (its score), checks in the order first met."""
    checks = list(dict.fromkeys(t.name for s in subs for t in s.graded.tests))
    path = out / "grades.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["student", "notebook", "score", "max_score", *checks, "notes", "submission"])
        for s in subs:
            by_name = {t.name: t.score for t in s.graded.tests}
            w.writerow([s.student, s.notebook, f"{s.graded.score:g}", f"{s.graded.max_score:g}",
                        *(f"{by_name[c]:g}" if c in by_name else "" for c in checks),
                        " | ".join(s.graded.notes), s.key])
    return path


def _e(text) -> str:
    return html.escape(str(text))


def write_overview(out: Path, subs: list[Submission]) -> Path:
    """One self-contained page: per notebook, per check: passed n/N, who, the commonest mistakes."""
    parts = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>connlab grades</title>"
             f"<style>{STYLE}</style></head><body><h1>Grades</h1>"
             f"<p class='small'>{len(subs)} submissions; each check's points are earned when it passes "
             "(partial credit per check). Sentences are what the checks said.</p>"]
    for notebook in dict.fromkeys(s.notebook for s in subs):
        mine = [s for s in subs if s.notebook == notebook]
        top = mine[0].graded.max_score
        mean = sum(s.graded.score for s in mine) / len(mine)
        parts.append(f"<h2>{_e(notebook)}</h2><p>{len(mine)} submissions, mean score {mean:.2f} of {top:g}</p>"
                     "<table class='summary'><tr><th>check</th><th>points</th><th>passed</th><th>who passed</th>"
                     "<th>most common mistakes</th></tr>")
        for name in dict.fromkeys(t.name for s in mine for t in s.graded.tests):
            tests = [(s, t) for s in mine for t in s.graded.tests if t.name == name]
            passed = [s.student for s, t in tests if t.status == "passed"]
            mistakes = Counter(t.output for _, t in tests if t.status != "passed").most_common(COMMON)
            listed = "".join(f"<li>{_e(m)} <span class='small'>({n}×)</span></li>" for m, n in mistakes)
            parts.append(f"<tr><td>{_e(name)}</td><td>{tests[0][1].max_score:g}</td><td>{len(passed)} / {len(tests)}"
                         f"</td><td>{_e(', '.join(passed)) or '—'}</td><td><ul>{listed}</ul></td></tr>")
        parts.append("</table><table class='summary'><tr><th>student</th><th>score</th><th>what happened</th>"
                     "<th>results</th></tr>")
        for s in mine:
            notes = "<br>".join(_e(n) for n in s.graded.notes) or "every cell ran"
            parts.append(f"<tr><td>{_e(s.student)}</td><td>{s.graded.score:g} / {s.graded.max_score:g}</td>"
                         f"<td>{notes}</td><td><a href='{_e(s.key)}/results.json'>results.json</a></td></tr>")
        parts.append("</table>")
    parts.append("</body></html>\n")
    path = out / "overview.html"
    path.write_text("".join(parts), encoding="utf-8")
    return path
