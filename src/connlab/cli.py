"""``connlab COMMAND ...``: one subcommand per experiment.

Only the chosen command's module is imported, so ``connlab --help`` is instant.
User errors (bad flags, files, checkpoints) print one line and exit with code 2.
Under ``torchrun`` every rank runs ``main``; it joins the process group first
(``connlab.distributed``), so every training command is data-parallel without changes.
"""

from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS = {
    "demo": ("connlab.experiments.demo", "the whole lab in one command: every experiment, then report.html"),
    "report": ("connlab.report", "rebuild report.html from existing run folders"),
    "data": ("connlab.experiments.data_info", "describe a data set as one JSON object"),
    "autoencoder": ("connlab.experiments.autoencoder", "Exercise 1: denoising autoencoder without/with skips"),
    "ladder": ("connlab.experiments.ladder", "Exercise 2: incremental denoising with T steps"),
    "gates": ("connlab.experiments.gates", "logistic units, product gates, softmax gates: the lecture's plots"),
    "rnn": ("connlab.experiments.rnn", "plain RNN vs GRU vs LSTM on the adding problem"),
    "depth": ("connlab.experiments.depth", "plain vs residual networks as depth grows"),
    "skipmlp": ("connlab.experiments.skipmlp", "an MLP with and without the input carried forward"),
    "classifier": ("connlab.experiments.classifier", "the MNIST classifier behind the diffusion quality metric"),
    "diffusion": ("connlab.experiments.diffusion", "DDPM / DDIM on MNIST: train, sample, eval"),
    "vit": ("connlab.experiments.vit", "a small Vision Transformer on MNIST, with attention maps"),
    "attention": ("connlab.experiments.attention", "a sequence task where the attention pattern is visible"),
    "explore": ("connlab.explore", "write explorer.html: the trained models of a run folder live in one offline page"),
}


# Commands that are not one training run: under torchrun they would only repeat each other's work.
SINGLE_PROCESS = ("demo", "report", "data", "diffusion sample", "diffusion eval")


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (no usage block) and exit code 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser(argv: list[str]) -> Parser:
    from connlab import __version__

    top = Parser(prog="connlab", description="connlab: gates, skips, residuals, U-Nets, diffusion, attention "
                                             "— each idea as a runnable experiment on real MNIST.")
    top.add_argument("--version", action="version", version=f"connlab {__version__}")
    sub = top.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if argv and argv[0] == name:
            importlib.import_module(module).add_arguments(p)
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
    from connlab import distributed
    from connlab.errors import UserError
    from connlab.fastpath import GraphCaptureFailed
    from connlab.train import TrainingDiverged

    name = " ".join([args.command] + ([args.action] if isinstance(getattr(args, "action", None), str) else []))
    where = ""
    try:
        if distributed.init_from_env():
            where = f" (rank {distributed.rank()} of {distributed.world_size()})"
            if name in SINGLE_PROCESS:
                raise UserError(f"{name} runs in one process; start it without torchrun")
            distributed.quiet_followers()
        code = args.run(args) or 0
        distributed.barrier()  # no rank leaves before rank 0 has written everything
        distributed.cleanup()
        return code
    except (UserError, ValueError) as err:
        print(f"connlab {args.command}{where}: error: {err}", file=sys.stderr)
        return 2
    except (TrainingDiverged, GraphCaptureFailed) as err:
        print(f"connlab {args.command}{where}: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"connlab {args.command}{where}: interrupted; continue with --resume --out RUN_DIR", file=sys.stderr)
        return 130
    except RuntimeError as err:  # a peer rank died or timed out: one line, not W tracebacks
        message = distributed.failure_message(err)
        if message is None:
            raise
        print(f"connlab {args.command}: error: {message}; continue with --resume --out RUN_DIR", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
