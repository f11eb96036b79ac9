"""Run one notebook in its own kernel, confined by construction to a scratch folder, cell by cell.

The kernel starts in ``scratch/work`` with a small environment of its own: HOME, TMPDIR, the XDG,
Jupyter, IPython, matplotlib and torch folders, connlab's data cache and the notebooks' run folder all
point into ``scratch``; nothing else of the grader's environment (tokens, credentials) is passed on.
The kernel is this Python (``sys.executable -m ipykernel_launcher``, from a kernel spec written into
``scratch``), so no kernel spec of the user's is read. The connection file is written into ``scratch``.
This keeps the grader's own process and an honest notebook inside ``scratch``; it is not a sandbox
against a hostile one (the README says: untrusted submissions go in a container or a separate account).

Each code cell has ``timeout`` seconds. A cell that runs past it is interrupted (KeyboardInterrupt);
when the kernel does not answer a probe after that, it is shut down and the cells after it are not run.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import connlab

PROBE_SECONDS = 15   # after an interrupt, how long the kernel has to answer before it is shut down
KERNEL = "connlab-grader"
TIMED_OUT = "connlab-grader: cell timed out"   # the answer nbclient gives for a cell it interrupted


@dataclass
class CellRun:
    """What happened to one code cell: ``ok``, ``error``, ``timeout``, ``died`` or ``not run`` (why)."""

    status: str
    seconds: float = 0.0
    why: str = ""


def environment(scratch: Path, size: str) -> dict[str, str]:
    """The kernel's whole environment: only what a notebook needs, every writable place inside ``scratch``."""
    folders = {"HOME": "home", "TMPDIR": "tmp", "XDG_CACHE_HOME": "cache", "XDG_CONFIG_HOME": "config",
               "XDG_DATA_HOME": "share", "IPYTHONDIR": "ipython", "MPLCONFIGDIR": "matplotlib",
               "TORCH_HOME": "cache/torch", "JUPYTER_CONFIG_DIR": "jupyter/config",
               "JUPYTER_DATA_DIR": "jupyter/data", "JUPYTER_RUNTIME_DIR": "jupyter/runtime",
               "CONNLAB_DATA": "cache/connlab", "CONNLAB_NB_OUT": "work/runs"}
    env = {name: str(scratch / sub) for name, sub in folders.items()}
    for path in env.values():
        Path(path).mkdir(parents=True, exist_ok=True)
    lab = str(Path(connlab.__file__).resolve().parents[1])   # the kernel imports the grader's own connlab
    env.update(PATH=os.environ.get("PATH", "/usr/bin:/bin"), LANG="C.UTF-8", MPLBACKEND="Agg",
               PYTHONPATH=os.pathsep.join(filter(None, [lab, os.environ.get("PYTHONPATH")])),
               CONNLAB_NB_SIZE=size, CONNLAB_MIRRORS="", JUPYTER_PLATFORM_DIRS="1", PYTHONNOUSERSITE="1",
               PIP_NO_INDEX="1", PIP_NO_CACHE_DIR="1")
    for name in ("OMP_NUM_THREADS", "CUDA_VISIBLE_DEVICES"):  # the instructor's choice of cores and GPUs
        if name in os.environ:
            env[name] = os.environ[name]
    return env


def _kernel_manager(scratch: Path):
    # lazy: nbformat/nbclient/jupyter are test-only dependencies (grading)
    from jupyter_client import AsyncKernelManager   # async: a blocking client would stall the cell timeout
    from jupyter_client.kernelspec import KernelSpecManager

    specs = scratch / "kernels"
    (specs / KERNEL).mkdir(parents=True, exist_ok=True)
    (specs / KERNEL / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "connlab grader", "language": "python"}))
    ksm = KernelSpecManager(kernel_dirs=[str(specs)], ensure_native_kernel=False)
    return AsyncKernelManager(kernel_name=KERNEL, kernel_spec_manager=ksm,
                         connection_file=str(scratch / "kernel-connection.json"))


def run(nb, scratch: Path, timeout: float, size: str) -> dict[int, CellRun]:
    """Execute ``nb`` in place (outputs into its cells); what happened to each code cell, by cell index."""
    # lazy: nbformat/nbclient/jupyter are test-only dependencies (grading)
    from jupyter_core.utils import run_sync

    work = scratch / "work"
    work.mkdir(parents=True, exist_ok=True)
    env = environment(scratch, size)
    km = _kernel_manager(scratch)
    timed_out: set[int] = set()
    client = _client(nb, km, timeout, work, timed_out)
    runs: dict[int, CellRun] = {}
    stopped = ""
    code = 0
    log = open(scratch / "kernel.log", "w")   # the kernel process's own output (not the cells'), kept out of the terminal
    try:
        with client.setup_kernel(cwd=str(work), env=env, stdout=log, stderr=log):
            for index, cell in enumerate(nb.cells):
                if cell.cell_type != "code":
                    continue
                code += 1
                if stopped:
                    runs[index] = CellRun("not run", why=stopped)
                    continue
                runs[index], stopped = _execute(client, km, nb, index, code, timeout, timed_out)
    finally:
        try:
            if km.has_kernel:
                run_sync(km.shutdown_kernel)(now=True)
        finally:
            run_sync(km.cleanup_resources)()
            log.close()
    return runs


def _client(nb, km, timeout: float, work: Path, timed_out: set[int]):
    """The notebook client; a cell that runs past ``timeout`` is interrupted and its id added to ``timed_out``."""
    # lazy: nbformat/nbclient/jupyter are test-only dependencies (grading)
    from nbclient import NotebookClient

    def on_error(cell, cell_index, execute_reply):
        if execute_reply["content"].get("ename") == TIMED_OUT:
            timed_out.add(id(cell))

    # interrupt_on_timeout: nbclient interrupts the kernel and answers for the cell itself; its own
    # CellTimeoutError would leave the cell's output reader running, which then eats later cells' outputs.
    return NotebookClient(nb, km=km, timeout=timeout, allow_errors=True, interrupt_on_timeout=True,
                          error_on_timeout={"ename": TIMED_OUT, "evalue": "", "traceback": []},
                          on_cell_error=on_error, startup_timeout=180, record_timing=False,
                          resources={"metadata": {"path": str(work)}})


def _execute(client, km, nb, index: int, code: int, timeout: float, timed_out: set[int]) -> tuple[CellRun, str]:
    """Run code cell number ``code`` (``nb.cells[index]``): what happened to it, and why no later cell may run
    ("" when they may)."""
    # lazy: nbformat/nbclient/jupyter are test-only dependencies (grading)
    from nbclient.exceptions import DeadKernelError

    cell = nb.cells[index]
    start = time.monotonic()
    try:
        client.execute_cell(cell, index, store_history=False)
    except DeadKernelError:
        return (CellRun("died", time.monotonic() - start, f"the kernel died in code cell {code}"),
                f"the kernel died in code cell {code}")
    seconds = time.monotonic() - start
    if id(cell) not in timed_out:
        failed = any(o.get("output_type") == "error" for o in cell.get("outputs", []))
        return CellRun("error" if failed else "ok", seconds), ""
    ran = CellRun("timeout", seconds, f"code cell {code} ran past the {timeout:g} s limit per cell and was stopped")
    if _interrupted(client, km, nb, index, timeout, timed_out):
        return ran, ""
    return ran, (f"code cell {code} ran past the {timeout:g} s limit and the kernel did not stop "
                 "when interrupted, so it was shut down")


def _interrupted(client, km, nb, index: int, timeout: float, timed_out: set[int]) -> bool:
    """After a cell's timeout: whether the interrupt stopped it (a probe cell runs); if not, shut the kernel down."""
    # lazy: nbformat/nbclient/jupyter are test-only dependencies (grading)
    from jupyter_core.utils import run_sync
    from nbclient.exceptions import DeadKernelError
    from nbformat.v4 import new_code_cell

    cell = nb.cells[index]
    probe = new_code_cell("pass")
    client.timeout = PROBE_SECONDS
    try:
        client.execute_cell(probe, index, store_history=False)
    except DeadKernelError:
        timed_out.add(id(probe))
    nb.cells[index] = cell   # nbclient files the probe at the index it is given
    client.timeout = timeout
    if id(probe) not in timed_out:
        return True
    run_sync(km.shutdown_kernel)(now=True)
    return False
