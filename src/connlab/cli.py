"""``connlab COMMAND ...``: one subcommand per entry of ``connlab.experiments.REGISTRY``.

Only the chosen command's module is imported, so ``connlab --help`` is instant.
User errors (``UserError``: bad flags, files, checkpoints; and argparse's) print one line and
exit with code 2; any other exception is a bug and keeps its traceback.
Under ``torchrun`` every rank runs ``main``; it joins the process group first
(``connlab.runtime.distributed``), so every training command is data-parallel without changes.
"""

from __future__ import annotations

import argparse
import sys

from connlab import __version__
from connlab.errors import UserError
from connlab.experiments import REGISTRY


def single_process(name: str) -> bool:
    """Commands that are not one training run: under torchrun they would only repeat each other's work."""
    command, _, action = name.partition(" ")
    entry = REGISTRY.get(command)
    return entry is not None and action in entry.single_process


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (no usage block) and exit code 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser(argv: list[str]) -> Parser:
    top = Parser(prog="connlab", description="connlab: gates, skips, residuals, U-Nets, diffusion, attention "
                                             "— each idea as a runnable experiment on real MNIST.")
    top.add_argument("--version", action="version", version=f"connlab {__version__}")
    sub = top.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for name, entry in REGISTRY.items():
        p = sub.add_parser(name, help=entry.help, description=entry.help)
        if argv and argv[0] == name:  # only the chosen command's module is imported
            entry.add_arguments(p)
    return top


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # --help, --version and argparse's one-line errors
        return stop.code if isinstance(stop.code, int) else 0
    if args.command is None:
        parser.print_help()
        return 0
    # lazy: these import torch (~1.6 s); ``connlab --help`` stays without it
    from connlab.runtime import distributed
    from connlab.runtime.fastpath import GraphCaptureFailed
    from connlab.runs import held, release
    from connlab.train import TrainingDiverged

    name = " ".join([args.command] + ([args.action] if isinstance(getattr(args, "action", None), str) else []))
    where = ""
    before = held()  # the demo runs its parts through main: they release their folders, not the demo's
    try:
        if distributed.init_from_env():
            where = f" (rank {distributed.rank()} of {distributed.world_size()})"
            if single_process(name):
                raise UserError(f"{name} runs in one process; start it without torchrun")
            distributed.quiet_followers()
        code = args.run(args) or 0
        distributed.barrier()  # no rank leaves before rank 0 has written everything
        distributed.cleanup()
        return code
    except UserError as err:  # any other exception is a bug and keeps its traceback
        print(f"connlab {args.command}{where}: error: {err}", file=sys.stderr)
        return 2
    except (TrainingDiverged, GraphCaptureFailed) as err:
        print(f"connlab {args.command}{where}: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"connlab {args.command}{where}: interrupted{continue_with(args, before)}", file=sys.stderr)
        return 130
    except RuntimeError as err:  # a peer rank died or timed out: one line, not W tracebacks
        message = distributed.failure_message(err)
        if message is None:
            raise
        print(f"connlab {args.command}: error: {message}{continue_with(args, before)}", file=sys.stderr)
        return 1
    finally:
        release(keep=before)


def continue_with(args: argparse.Namespace, before: list[str]) -> str:
    """"; continue with --resume --out FOLDER" for a command that resumes (its folder: --out, or the one
    it claimed), else nothing."""
    from connlab.runs import held  # lazy: torch, as in main

    if not hasattr(args, "resume"):
        return ""
    folder = getattr(args, "out", None) or next(reversed([k for k in held() if k not in before]), None)
    return f"; continue with --resume --out {folder}" if folder else "; continue with --resume --out RUN_DIR"


if __name__ == "__main__":
    sys.exit(main())
