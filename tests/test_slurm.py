"""The lab's own batch scripts (``examples/slurm/*.sbatch``) on a real SLURM cluster on this machine.

``tests/slurm_cluster.py`` starts munged, slurmctld and two slurmd (two nodes on one host; one where
the build cannot) in a temporary folder. Every job is submitted at the start, so they run side by
side on the two nodes, and each test waits for its own:

- ``one_node.sbatch`` with NPROC=2 --device cpu: torchrun, two gloo ranks;
- ``seeds.sbatch``, its job array cut to three tasks: one run folder per seed;
- ``multi_node.sbatch`` on two nodes (srun starts one torchrun per node, c10d rendezvous on the first);
- ``one_node.sbatch`` again with the same command, ``scontrol requeue``d once it has written a
  checkpoint: the requeued job resumes and must end with the uninterrupted job's weights, exactly.

The checks on each run folder are those of ``tests/test_distributed.py``: world size recorded, one
metrics line per epoch, the epoch line printed once, no temporary files (only rank 0 wrote).
Skipped with the reason where SLURM is not installed or the tests do not run as root.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file

import connlab
from tests.slurm_cluster import Cluster, why_not

pytestmark = [pytest.mark.slurm, pytest.mark.slow, pytest.mark.skipif(why_not() is not None, reason=str(why_not()))]

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "examples" / "slurm"
TINY = "autoencoder --device cpu --dataset mnist-embedded --skip none --limit 400 --batch-size 133"
# long enough to be caught running: 2 epochs of 16 steps, a checkpoint every 4
TRAIN = "autoencoder --device cpu --dataset mnist-embedded --skip none --epochs 2 --limit 800 --batch-size 50 " \
        "--checkpoint-every 4"
WEIGHTS = Path("variants") / "none-seed0" / "model.safetensors"
SEEDS = 3
JOB_TIMEOUT = 240


@pytest.fixture(scope="module")
def cluster():
    if not (Path(sys.prefix) / "bin" / "activate").is_file():
        pytest.skip(f"the batch scripts source a virtual environment's bin/activate; {sys.prefix} has none")
    c = Cluster(nodes=2)
    yield c
    c.stop()


@pytest.fixture(scope="module")
def jobs(cluster, tmp_path_factory):
    """Every job submitted at once: {name: (job id, run folder)}; the folder of the outputs."""
    out = tmp_path_factory.mktemp("slurm")
    base = {"VENV": sys.prefix, "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(connlab.__file__).parents[1]),
                                                                             os.environ.get("PYTHONPATH")])),
            "CONNLAB_DATA": str(out / "cache"), "CONNLAB_MIRRORS": "", "OMP_NUM_THREADS": "1"}
    log = ("--open-mode=append", f"--output={out}/%x-%j.out")   # append: a requeued job keeps its first run's lines

    def submit(script, **env):
        return cluster.sbatch(SCRIPTS / script, {**base, **env}, *log, cwd=ROOT)

    submitted = {
        "one_node": (submit("one_node.sbatch", NPROC="2", RUN=str(out / "one"), ARGS=TRAIN), out / "one"),
        "requeue": (submit("one_node.sbatch", NPROC="2", RUN=str(out / "requeue"), ARGS=TRAIN), out / "requeue"),
        "seeds": (cluster.sbatch(SCRIPTS / "seeds.sbatch", {**base, "SWEEP": str(out / "sweep"),
                                                            "ARGS": f"{TINY} --epochs 1"},
                                 f"--array=0-{SEEDS - 1}", f"--output={out}/%x-%A_%a.out", cwd=ROOT), out / "sweep"),
    }
    # two nodes where this slurmd can run two on one host; else its srun … torchrun line on one node
    multi = cluster.sbatch(SCRIPTS / "multi_node.sbatch", {**base, "NPROC": "1", "RUN": str(out / "multi"),
                                                           "ARGS": f"{TINY} --epochs 1", "PORT": str(_free_port())},
                           *log, f"--nodes={len(cluster.nodes)}", cwd=ROOT)
    submitted["multi_node"] = (multi, out / "multi")
    _requeue_once_checkpointed(cluster, *submitted["requeue"], out)
    return submitted, out


def _requeue_once_checkpointed(cluster, job_id: str, run: Path, out: Path) -> None:
    """``scontrol requeue`` the job as soon as it has written its first checkpoint, while it still trains."""
    checkpoints = run / "variants" / "none-seed0" / "checkpoints"
    deadline = time.monotonic() + JOB_TIMEOUT
    while not (checkpoints.is_dir() and any(p.name.startswith("step-") for p in checkpoints.iterdir())):
        assert time.monotonic() < deadline, f"no checkpoint: {cluster.states(job_id)}\n{_output(out, job_id)[-3000:]}"
        assert cluster.states(job_id) != ["COMPLETED"], "the job ended before its first checkpoint"
        time.sleep(0.2)
    assert not (run / WEIGHTS).exists(), "the job finished before it could be requeued: make TRAIN longer"
    cluster.requeue(job_id)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _output(out: Path, job_id: str) -> str:
    return "\n".join(p.read_text(errors="replace") for p in sorted(out.glob(f"*-{job_id}*.out")))


def _finished(cluster, jobs, name) -> tuple[Path, str]:
    (job_id, run), out = jobs[0][name], jobs[1]
    states = cluster.wait(job_id, JOB_TIMEOUT)
    text = _output(out, job_id)
    assert states and set(states) == {"COMPLETED"}, f"{name}: {states}\n{text[-3000:]}\n{cluster.logs()}"
    return run, text


def _rank_zero_alone_wrote(run: Path, text: str, epochs: int, world_size: int, nodes: int) -> None:
    lines = (run / "variants" / "none-seed0" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in lines] == list(range(1, epochs + 1))   # one line per epoch
    for epoch in range(1, epochs + 1):
        assert text.count(f"none seed 0 epoch {epoch}/{epochs}") == 1, text[-3000:]   # printed by rank 0 only
    assert text.count("| skip=none |") == 1
    assert not [p.name for p in run.rglob("*") if p.name.startswith(".")]   # no temporary files left
    spread = json.loads((run / "config.json").read_text())["distributed"]
    assert (spread["world_size"], spread["nodes"]) == (world_size, nodes), spread


def _max_difference(a: Path, b: Path) -> float:
    wa, wb = load_file(str(a)), load_file(str(b))
    assert wa.keys() == wb.keys()
    return max((wa[k].float() - wb[k].float()).abs().max().item() for k in wa)


def test_one_node_script_trains_on_two_gloo_ranks(cluster, jobs):
    run, text = _finished(cluster, jobs, "one_node")
    _rank_zero_alone_wrote(run, text, epochs=2, world_size=2, nodes=1)
    assert (run / WEIGHTS).is_file()


def test_seed_array_writes_one_run_folder_per_seed(cluster, jobs):
    sweep, text = _finished(cluster, jobs, "seeds")
    assert sorted(p.name for p in sweep.iterdir()) == [f"seed{i}" for i in range(SEEDS)]
    weights = []
    for i in range(SEEDS):
        config = json.loads((sweep / f"seed{i}" / "config.json").read_text())
        assert config["config"]["seed"] == i and config["distributed"]["world_size"] == 1
        weights.append(sweep / f"seed{i}" / "variants" / f"none-seed{i}" / "model.safetensors")
    assert _max_difference(weights[0], weights[1]) > 0   # each task trained its own seed
    assert len(list(jobs[1].glob(f"*-{jobs[0]['seeds'][0]}_*.out"))) == SEEDS   # one output file per task


def test_multi_node_script_meets_across_slurm_nodes(cluster, jobs):
    run, text = _finished(cluster, jobs, "multi_node")
    nodes = len(cluster.nodes)
    _rank_zero_alone_wrote(run, text, epochs=1, world_size=nodes, nodes=nodes)
    assert (run / WEIGHTS).is_file()


def test_requeued_job_resumes_and_ends_with_the_uninterrupted_weights(cluster, jobs):
    job_id, _ = jobs[0]["requeue"]
    resumed, text = _finished(cluster, jobs, "requeue")
    assert cluster.job(job_id)["Restarts"] == "1"
    assert "DUE TO JOB REQUEUE" in text                       # SLURM stopped the first run ...
    reference, _ = _finished(cluster, jobs, "one_node")       # ... and the second resumed it:
    lines = (resumed / "variants" / "none-seed0" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in lines] == [1, 2]
    # checkpointed optimizer, data order and noise: bit for bit the run that was never stopped
    assert _max_difference(resumed / WEIGHTS, reference / WEIGHTS) == 0.0
