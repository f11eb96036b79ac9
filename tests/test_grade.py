"""``connlab grade``: scores, sentences and what happens to notebooks that crash, hang or lack a cell.

The toy tests grade a small notebook with nbgrader's metadata whose checks need no torch (nine
submissions, a kernel start each: marked slow together); the lab test (slow) grades the lab's own four notebooks, as students hand them
in: the solutions, the exercises untouched, the typical mistakes, one that raises, one that loops
forever, one with a cell deleted (``tests/grading.py`` makes them).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from connlab.cli import main
from connlab.experiments import REGISTRY

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = "5"

SETUP = """import os, time

class CheckFailed(AssertionError):
    pass

class YourTurn(NotImplementedError):
    pass"""
CHECK_DOUBLE = """if double(2) != 4:
    raise CheckFailed(f"double(2) gave {double(2)}; it should give 4: multiply by 2")
print("✓ double(2) = 4")"""
CHECK_HALF = """if half(4) != 2:
    raise CheckFailed("half(4) should be 2")
print("✓ half(4) = 2")"""
PARTIAL = "0.5 if half(3) == 1 else 1.0   # nbgrader's partial credit: the result is the score"


def _cell(source, **nbgrader):
    cell = new_code_cell(source)
    if nbgrader:
        cell.metadata["nbgrader"] = {"schema_version": 3, "grade": False, "solution": False, "locked": False,
                                     **nbgrader}
    return cell


def toy(double="raise YourTurn('write double')", half="raise YourTurn('write half')", check_double=CHECK_DOUBLE,
        drop=()):
    """The toy assignment: two places to write (double, half), three checks worth 2 + 1 + 1 points."""
    cells = [new_markdown_cell("# toy"), _cell(SETUP, locked=True, grade_id="setup"),
             _cell(f"def double(x):\n    {double}", solution=True, grade_id="answer_double"),
             _cell(check_double, grade=True, locked=True, points=2, grade_id="check_double"),
             _cell(f"def half(x):\n    {half}", solution=True, grade_id="answer_half"),
             _cell(CHECK_HALF, grade=True, locked=True, points=1, grade_id="check_half"),
             _cell(PARTIAL, grade=True, locked=True, points=1, grade_id="check_partial")]
    nb = new_notebook(cells=[c for c in cells if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") not in drop])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


SOLVED = dict(double="return 2 * x", half="return x // 2")
SUBMISSIONS = {
    "solved": SOLVED,
    "untouched": {},
    "wrong": dict(double="return x + 1", half="return x // 2"),
    "tampered": dict(double="return x", half="return x // 2", check_double="print('✓ all good')"),
    "raises": dict(double="return 2 * x", half="raise ValueError('no halves today')"),
    "deleted": dict(**SOLVED, drop=("check_half",)),
    "loops": dict(double="return 2 * x", half="while True:\n        pass"),
    "deaf": dict(double="while True:\n        try:\n            time.sleep(0.05)\n        except KeyboardInterrupt:\n"
                        "            pass", half="return x // 2"),
    "dies": dict(double="os._exit(1)", half="return x // 2"),
}


@pytest.fixture(scope="module")
def toy_graded(tmp_path_factory):
    root = tmp_path_factory.mktemp("grade")
    (root / "release").mkdir()
    nbformat.write(toy(), root / "release" / "toy.ipynb")
    paths = []
    for student, kwargs in SUBMISSIONS.items():
        path = root / "submitted" / student / "toy.ipynb"
        path.parent.mkdir(parents=True)
        nbformat.write(toy(**kwargs), path)
        paths.append(path)
    before = {p: (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns) for p in paths}
    code = main(["grade", *map(str, paths), "--release", str(root / "release"), "--out", str(root / "out"),
                 "--timeout", TIMEOUT])
    assert code == 0
    after = {p: (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns) for p in paths}
    assert after == before   # nothing of a submission is modified
    results = {s: json.loads((root / "out" / s / "toy" / "results.json").read_text()) for s in SUBMISSIONS}
    return root / "out", results


def checks_of(result) -> dict:
    return {t["name"]: (t["score"], t["status"], t["output"]) for t in result["tests"]}


@pytest.mark.slow   # shares toy_graded: nine kernel starts
def test_solved_earns_every_point_but_the_partial_one(toy_graded):
    _, results = toy_graded
    r = results["solved"]
    assert (r["score"], r["max_score"]) == (3.5, 4.0)
    assert checks_of(r) == {"check_double": (2.0, "passed", "double(2) = 4"),
                           "check_half": (1.0, "passed", "half(4) = 2"),
                           "check_partial": (0.5, "failed", "partial credit: 0.5 of 1 points")}
    assert r["output"] == "every cell ran"


@pytest.mark.slow   # shares toy_graded: nine kernel starts
def test_untouched_scores_zero_with_the_your_turn_lines(toy_graded):
    t = checks_of(toy_graded[1]["untouched"])
    assert t["check_double"] == (0.0, "failed", "Your turn: write double")
    assert t["check_half"] == (0.0, "failed", "Your turn: write half")
    assert t["check_partial"][0] == 0.0 and t["check_partial"][2] == "Your turn: write half"


@pytest.mark.slow   # shares toy_graded: nine kernel starts
def test_a_mistake_gets_the_checks_sentence_and_partial_credit(toy_graded):
    r = toy_graded[1]["wrong"]
    assert r["score"] == 1.5
    assert checks_of(r)["check_double"] == (0.0, "failed", "double(2) gave 3; it should give 4: multiply by 2")


@pytest.mark.slow   # shares toy_graded: nine kernel starts
def test_an_edited_check_is_put_back_from_the_release(toy_graded):
    t = checks_of(toy_graded[1]["tampered"])
    assert t["check_double"] == (0.0, "failed", "double(2) gave 2; it should give 4: multiply by 2")


@pytest.mark.slow   # shares toy_graded: nine kernel starts
def test_a_raising_answer_says_what_it_raised(toy_graded):
    r = toy_graded[1]["raises"]
    assert r["score"] == 2.0
    assert checks_of(r)["check_half"] == (0.0, "failed", "ValueError: no halves today")


@pytest.mark.slow   # shares toy_graded: nine kernel starts
def test_a_deleted_check_is_run_from_the_release_and_said_so(toy_graded):
    r = toy_graded[1]["deleted"]
    assert r["score"] == 3.5 and checks_of(r)["check_half"][1] == "passed"
    assert "the graded cell check_half was missing from the submission; it was run from the released notebook" \
        in r["output"]


@pytest.mark.slow   # shares toy_graded: nine kernel starts
def test_a_loop_is_stopped_at_the_cell_limit_and_the_rest_still_runs(toy_graded):
    r = toy_graded[1]["loops"]
    t = checks_of(r)
    assert t["check_double"][1] == "passed" and r["score"] == 2.0
    assert t["check_half"] == (0.0, "failed", f"code cell 5 ran past the {TIMEOUT} s limit per cell and was stopped")
    assert f"code cell 5 ran past the {TIMEOUT} s limit per cell and was stopped" in r["output"]


@pytest.mark.slow   # shares toy_graded: nine kernel starts
def test_a_loop_that_ignores_the_interrupt_stops_the_kernel(toy_graded):
    r = toy_graded[1]["deaf"]
    t = checks_of(r)
    assert r["score"] == 0.0
    assert t["check_double"][2] == f"code cell 3 ran past the {TIMEOUT} s limit per cell and was stopped"
    assert t["check_half"][2].startswith(f"not run: code cell 3 ran past the {TIMEOUT} s limit and the kernel did "
                                         "not stop when interrupted")
    assert "code cells after that were not run" in r["output"]


@pytest.mark.slow   # shares toy_graded: nine kernel starts
def test_a_dead_kernel_scores_what_ran_before_it(toy_graded):
    r = toy_graded[1]["dies"]
    t = checks_of(r)
    assert r["score"] == 0.0
    assert t["check_double"][2] == "the kernel died in code cell 3"
    assert t["check_half"][2] == "not run: the kernel died in code cell 3"


@pytest.mark.slow   # shares toy_graded: nine kernel starts
def test_grades_csv_and_the_overview_cover_every_submission(toy_graded):
    import csv

    out, results = toy_graded
    rows = list(csv.DictReader((out / "grades.csv").open()))
    assert [r["student"] for r in rows] == list(SUBMISSIONS)
    assert {r["student"]: float(r["score"]) for r in rows} == {s: results[s]["score"] for s in SUBMISSIONS}
    assert rows[0]["check_double"] == "2" and rows[1]["check_double"] == "0"
    page = (out / "overview.html").read_text()
    assert "<td>check_double</td><td>2</td><td>4 / 9</td>" in page   # solved, raises, deleted, loops
    assert "Your turn: write double" in page and "solved, raises, deleted, loops" in page
    assert not (out / ".scratch").exists()   # the scratch folders are gone
    graded = nbformat.read(out / "solved" / "toy" / "graded.ipynb", as_version=4)
    assert any(o.get("text", "").startswith("✓ double") for c in graded.cells for o in c.get("outputs", []))


# --- bad input: one line, exit 2, nothing run -----------------------------------------------------------

def _one_line_exit_2(argv, capsys, *phrases):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    for phrase in phrases:
        assert phrase in err, err


def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    release = tmp_path / "release"
    release.mkdir()
    nbformat.write(toy(), release / "toy.ipynb")
    good = tmp_path / "toy.ipynb"
    nbformat.write(toy(**SOLVED), good)
    junk = tmp_path / "junk.ipynb"
    junk.write_text("this is not json")
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    common = ["--release", str(release)]
    _one_line_exit_2(["grade", str(tmp_path / "nope.ipynb"), "--out", str(tmp_path / "o"), *common], capsys,
                     "nope.ipynb: no such notebook")
    _one_line_exit_2(["grade", str(junk), "--out", str(tmp_path / "o"), *common], capsys, "junk.ipynb: not a Jupyter notebook")
    _one_line_exit_2(["grade", str(good), "--out", str(a_file / "out"), *common], capsys, f"--out {a_file / 'out'}: cannot write")
    plain = tmp_path / "plain"   # notebooks without nbgrader metadata
    plain.mkdir()
    nbformat.write(new_notebook(cells=[new_code_cell("1 + 1")]), plain / "toy.ipynb")
    _one_line_exit_2(["grade", str(good), "--out", str(tmp_path / "o"), "--release", str(plain)], capsys,
                     "no notebook there has graded cells")
    _one_line_exit_2(["grade", str(good), "--out", str(tmp_path / "o"), "--release", str(tmp_path / "none")], capsys,
                     "no such folder")
    assert not (tmp_path / "o").exists()   # refused before anything ran or was written


# --- the grader's own process stays in its scratch folder and --out -----------------------------------------

AUDIT = """
import json, os, sys
opened = []
def hook(event, args):
    # absolute paths only: a relative one here is a name under a folder's fd (shutil.rmtree inside --out);
    # every path the test passes is absolute, and HOME and the working folder are checked to stay empty
    if event == "open" and isinstance(args[0], (str, bytes, os.PathLike)) and os.path.isabs(os.fsdecode(args[0])):
        mode, flags = (args[1] or ""), (args[2] or 0)
        write = any(c in str(mode) for c in "wax+") or bool(flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT))
        opened.append((os.path.abspath(os.fsdecode(args[0])), write))
    elif event in ("os.mkdir", "os.rename", "os.remove", "os.rmdir", "shutil.rmtree", "os.symlink"):
        if os.path.isabs(os.fsdecode(args[0])):
            opened.append((os.fsdecode(args[0]), True))
sys.addaudithook(hook)
from connlab.cli import main
code = main(sys.argv[2:])
with open(sys.argv[1], "w") as f:
    json.dump({"code": code, "opened": opened}, f)
"""


def test_the_grader_reads_and_writes_only_its_inputs_scratch_and_out(tmp_path):
    release, home, cwd, out = tmp_path / "release", tmp_path / "home", tmp_path / "cwd", tmp_path / "out"
    for d in (release, home, cwd):
        d.mkdir()
    nbformat.write(toy(), release / "toy.ipynb")
    sub = tmp_path / "alice_toy.ipynb"
    nbformat.write(toy(**SOLVED), sub)
    script = tmp_path / "audit.py"
    script.write_text(AUDIT)
    log = tmp_path / "opened.json"
    env = {**os.environ, "HOME": str(home), "PYTHONPATH": os.pathsep.join(filter(None, [
        str(ROOT / "src"), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run([sys.executable, str(script), str(log), "grade", str(sub), "--release", str(release),
                           "--out", str(out), "--timeout", "60"], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    record = json.loads(log.read_text())
    assert record["code"] == 0
    assert json.loads((out / "alice" / "toy" / "results.json").read_text())["score"] == 3.5
    python = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
    allowed_reads = [str(out), str(release), str(sub), str(script), str(ROOT / "src"), *python, "/dev/", "/proc/", "/sys/",
                     "/etc/", "/usr/lib/", "/usr/share/"]
    writes = sorted({p for p, w in record["opened"] if w and not p.startswith(str(out))} - {str(log)})
    reads = sorted({p for p, w in record["opened"] if not w and not any(
        os.path.realpath(p).startswith(a) or p.startswith(a) for a in allowed_reads)})
    assert writes == [] and reads == []
    assert list(home.iterdir()) == [] and list(cwd.iterdir()) == []   # nothing in HOME or the working folder


# --- slow: the lab's own notebooks, as students hand them in --------------------------------------------------

NOTEBOOKS = tuple(sorted(e.notebook for e in REGISTRY.values() if e.notebook))   # the registry's list
SCALE = "    scores = scores / math.sqrt(h)\n"   # notebook 04's scaling line, inside causal_attention
MISTAKES = {   # student: (notebook, edits of the solution, grade ids deleted)
    "no_cat": ("01_autoencoder", [("        h = torch.cat([h, conv_2], dim=1)", "        pass")], ()),
    "swapped": ("02_incremental_denoising", [("    return inputs, targets", "    return targets, inputs")], ()),
    "no_sqrt": ("03_diffusion", [("(1 - ab).sqrt() * eps", "(1 - ab) * eps"),
                                 ("    return alpha_bar_prev ** 0.5 * x0_hat + (1 - alpha_bar_prev) ** 0.5 * eps_hat",
                                  "    return x0_hat")], ()),
    "no_scale": ("04_attention", [(SCALE, "")], ()),
    "raises": ("04_attention", [(SCALE, "    raise ValueError('my attention is not ready')\n")], ()),
    "deleted_check": ("04_attention", [], ("check_causal_attention",)),
    "deleted_answer": ("04_attention", [], ("causal_attention",)),
}
# the check's head size is 20, as is the course's H: the loop never ends there
LOOP = [(SCALE, "    while q.shape[-1] == 20:\n        pass\n" + SCALE)]


@pytest.fixture(scope="module")
def lab_graded(tmp_path_factory):
    from tests.grading import release, submission

    root = tmp_path_factory.mktemp("lab")
    rel = release(root / "release", NOTEBOOKS)
    subs = [submission(root / "in" / "solved" / f"{n}.ipynb", n) for n in NOTEBOOKS]
    subs += [submission(root / "in" / "untouched" / f"{n}.ipynb", n, solved=False) for n in NOTEBOOKS]
    subs += [submission(root / "in" / student / f"{n}.ipynb", n, edits, drop=drop)
             for student, (n, edits, drop) in MISTAKES.items()]
    assert main(["grade", *map(str, subs), "--release", str(rel), "--out", str(root / "out")]) == 0
    loop = submission(root / "in" / "loops" / "04_attention.ipynb", "04_attention", LOOP)
    assert main(["grade", str(loop), "--release", str(rel), "--out", str(root / "out-loop"), "--timeout", "30"]) == 0
    results = {(p.parent.parent.name, p.parent.name): json.loads(p.read_text())
               for out in ("out", "out-loop") for p in (root / out).glob("*/*/results.json")}
    return results


@pytest.mark.slow
def test_lab_notebooks_are_graded_as_the_checks_say(lab_graded):
    r = lab_graded
    for n in NOTEBOOKS:   # the solutions: full marks; the exercises untouched: 0, each check a Your-turn line
        solved, untouched = r[("solved", n)], r[("untouched", n)]
        assert solved["score"] == solved["max_score"] > 0 and solved["output"] == "every cell ran", solved
        assert untouched["score"] == 0 and untouched["max_score"] == solved["max_score"]
        outputs = [t["output"] for t in untouched["tests"]]
        assert all(o.startswith("Your turn: ") for o in outputs) and len(set(outputs)) == len(outputs), untouched
    # a typical mistake per check: the check's sentence, partial credit for the rest
    assert checks_of(r[("no_cat", "01_autoencoder")])["check_skip_autoencoder"][2].find("but forward hands it 128") > 0
    assert r[("no_cat", "01_autoencoder")]["score"] == 1
    assert checks_of(r[("swapped", "02_incremental_denoising")])["check_training_pairs"][2].startswith(
        "the pairs are swapped")
    assert r[("swapped", "02_incremental_denoising")]["score"] == 2
    t = checks_of(r[("no_sqrt", "03_diffusion")])
    assert "that is 1 − ᾱ_t: take its square root" in t["check_q_sample"][2]
    assert "you returned x̂_0" in t["check_ddim_step"][2] and r[("no_sqrt", "03_diffusion")]["score"] == 0
    no_scale = r[("no_scale", "04_attention")]
    assert checks_of(no_scale)["check_causal_attention"][2].startswith("the scores are not scaled: multiply q kᵀ by 1/√H")
    raised = checks_of(r[("raises", "04_attention")])
    assert "raised ValueError: my attention is not ready" in raised["check_causal_attention"][2]
    assert raised["check_toy_head"][0] == 0    # its model is built on the attention that raises
    # a deleted check runs from the release; a deleted answer leaves its check nothing to test
    kept = r[("deleted_check", "04_attention")]
    assert kept["score"] == kept["max_score"] == 2 and "check_causal_attention was missing from the submission" \
        in kept["output"]
    gone = r[("deleted_answer", "04_attention")]
    assert gone["score"] == 0
    assert checks_of(gone)["check_causal_attention"][2] == "NameError: name 'causal_attention' is not defined"
    loops = r[("loops", "04_attention")]
    assert re.fullmatch(r"code cell \d+ ran past the 30 s limit per cell and was stopped",
                        checks_of(loops)["check_causal_attention"][2]), loops
