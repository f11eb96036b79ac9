"""A SLURM cluster on this machine for the tests, without systemd: munged, slurmctld -D, slurmd -D.

Everything lives in one temporary folder: the munge key and socket, ``slurm.conf`` (free ports,
``ProctrackType=proctrack/pgid``, ``SelectType=select/cons_tres``), the state, spool and log
files, and the "GPUs": character devices made with ``mknod`` (copies of /dev/null), so the batch
scripts' ``--gpus-per-node`` requests are granted without a GPU. Slurm only counts them: with
``TaskPlugin=task/none`` nothing restricts a job's devices, and the tests run ``--device cpu``.

Debian's ``slurmd`` is built with multiple-slurmd support (``scontrol show config`` says
``MULTIPLE_SLURMD = Yes``), so two nodes run on one host, each slurmd on its own port; where a
build lacks it the cluster has one node (``Cluster.nodes``).

Needs root (slurmd starts jobs as their user, munged's key must be its own) and the Debian packages
``slurm-wlm`` and ``munge``; ``why_not()`` says what is missing.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol")
GPUS_PER_NODE = 16   # enough for every job of the tests at once (each script asks for 4, the array 1 each)
CPUS_PER_NODE = 64   # declared, not real (SlurmdParameters=config_overrides): the scripts ask for 16 per task


def why_not() -> str | None:
    """Why a cluster cannot start here, or None."""
    missing = [d for d in DAEMONS if shutil.which(d) is None]
    if missing:
        return f"SLURM is not installed ({', '.join(missing)} missing): apt-get install slurm-wlm munge as root"
    if os.geteuid() != 0:
        return "a local SLURM cluster needs root (slurmd, munged)"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _multiple_slurmd() -> bool:
    """Whether this slurmd was built to run several nodes on one host (``--enable-multiple-slurmd``)."""
    lib = Path("/usr/lib/x86_64-linux-gnu/slurm-wlm/libslurmfull.so")
    # `scontrol show config` prints MULTIPLE_SLURMD only when built with it; it needs a running
    # controller, so ask the library for the string that line is made of.
    return lib.is_file() and b"MULTIPLE_SLURMD\x00" in lib.read_bytes()


class Cluster:
    """A one- or two-node SLURM cluster in a temporary folder; ``stop()`` ends every daemon it started."""

    def __init__(self, nodes: int = 2):
        self.root = Path(tempfile.mkdtemp(prefix="connlab-slurm-"))  # short: unix socket paths are limited
        self.nodes = [f"n{i + 1}" for i in range(nodes if _multiple_slurmd() else 1)]
        self.procs: list[subprocess.Popen] = []
        self.conf = self.root / "slurm.conf"
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    # --- start and stop -------------------------------------------------------------------------------

    def _start(self) -> None:
        r = self.root
        for sub in ("munge", "state", "log", *(f"spool/{n}" for n in self.nodes)):
            (r / sub).mkdir(parents=True, exist_ok=True)
        key = r / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        self.socket = r / "munge" / "munge.socket"
        munged = subprocess.run(["munged", "--force", f"--socket={self.socket}", f"--key-file={key}",
                                 f"--log-file={r / 'munge' / 'munged.log'}", f"--pid-file={r / 'munge' / 'munged.pid'}",
                                 f"--seed-file={r / 'munge' / 'munged.seed'}"], capture_output=True, text=True)
        assert munged.returncode == 0, munged.stderr
        for i in range(GPUS_PER_NODE):
            subprocess.run(["mknod", str(r / f"gpu{i}"), "c", "1", "3"], check=True)
        (r / "gres.conf").write_text(f"Name=gpu File={r}/gpu[0-{GPUS_PER_NODE - 1}]\n")
        host = socket.gethostname()
        ports = {n: _free_port() for n in self.nodes}
        node_lines = "\n".join(
            f"NodeName={n} NodeHostname={host} NodeAddr=127.0.0.1 Port={ports[n]} CPUs={CPUS_PER_NODE} "
            f"RealMemory=4000 Gres=gpu:{GPUS_PER_NODE} State=UNKNOWN" for n in self.nodes)
        self.conf.write_text(f"""\
ClusterName=connlab-test
SlurmctldHost={host}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort={_free_port()}
AuthType=auth/munge
AuthInfo=socket={self.socket}
CredType=cred/munge
StateSaveLocation={r}/state
SlurmdSpoolDir={r}/spool/%n
SlurmctldPidFile={r}/slurmctld.pid
SlurmdPidFile={r}/slurmd-%n.pid
SlurmctldLogFile={r}/log/slurmctld.log
SlurmdLogFile={r}/log/slurmd-%n.log
ProctrackType=proctrack/pgid
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmdParameters=config_overrides
ReturnToService=2
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
KillWait=10
GresTypes=gpu
{node_lines}
PartitionName=test Nodes={','.join(self.nodes)} Default=YES MaxTime=INFINITE State=UP
""")
        self._daemon(["slurmctld", "-D", "-i", "-f", str(self.conf)], "slurmctld")
        self._wait(lambda: self._run("scontrol", "ping").returncode == 0, 30, "slurmctld did not answer")
        for n in self.nodes:
            self._daemon(["slurmd", "-D", "-N", n, "-f", str(self.conf)], f"slurmd-{n}")

        def idle() -> bool:
            states = self._run("sinfo", "-h", "-N", "-o", "%N %t").stdout.split()
            return states[1::2] == ["idle"] * len(self.nodes)
        self._wait(idle, 60, "the nodes did not come up idle")

    def _daemon(self, argv: list[str], name: str) -> None:
        log = open(self.root / "log" / f"{name}.out", "w")
        self.procs.append(subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=self.env))
        log.close()

    def stop(self) -> None:
        if self.procs:
            self._run("scancel", "--full", "--user", "root")
        for proc in reversed(self.procs):
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs = []
        pid_file = self.root / "munge" / "munged.pid"
        if pid_file.is_file():
            try:
                os.kill(int(pid_file.read_text().strip()), 15)
            except (ProcessLookupError, ValueError):
                pass

    def logs(self) -> str:
        """The tail of every daemon log: what a failing test prints."""
        return "\n".join(f"== {p.name}\n" + "\n".join(p.read_text(errors="replace").splitlines()[-15:])
                         for p in sorted((self.root / "log").glob("*")))

    # --- jobs -------------------------------------------------------------------------------------------

    def _run(self, *argv: str) -> subprocess.CompletedProcess:
        return subprocess.run(list(argv), env=self.env, capture_output=True, text=True, timeout=60)

    @staticmethod
    def _wait(ready, timeout: float, message: str) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            if time.monotonic() > deadline:
                raise TimeoutError(message)
            time.sleep(0.5)

    def sbatch(self, script: Path, env: dict, *options: str, cwd: Path) -> str:
        """Submit ``script`` with the variables ``env`` exported; the job id."""
        proc = subprocess.run(["sbatch", "--parsable", *options, str(script)], env={**self.env, **env},
                              cwd=cwd, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.strip().split(";")[0]

    def job(self, job_id: str) -> dict:
        """``scontrol show job`` as a dict (the first array task's, for an array job)."""
        text = self._run("scontrol", "show", "job", "-o", job_id).stdout.splitlines()
        return dict(field.split("=", 1) for field in text[0].split() if "=" in field) if text else {}

    def states(self, job_id: str) -> list[str]:
        """The state of every task of the job (one for a plain job)."""
        out = self._run("scontrol", "show", "job", "-o", job_id).stdout.splitlines()
        return [dict(f.split("=", 1) for f in line.split() if "=" in f)["JobState"] for line in out]

    def wait(self, job_id: str, timeout: float) -> list[str]:
        """Wait until every task of the job has ended; their states."""
        ended = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL"}
        self._wait(lambda: set(self.states(job_id)) <= ended, timeout,
                   f"job {job_id} did not end within {timeout:.0f} s: {self.states(job_id)}\n{self.logs()}")
        return self.states(job_id)

    def requeue(self, job_id: str) -> None:
        """``scontrol requeue``, then let it start again at once (SLURM holds a requeued job ~2 minutes)."""
        assert self._run("scontrol", "requeue", job_id).returncode == 0
        self._wait(lambda: self.job(job_id).get("JobState") == "PENDING", 60, f"job {job_id} was not requeued")
        assert self._run("scontrol", "update", f"jobid={job_id}", "StartTime=now").returncode == 0
