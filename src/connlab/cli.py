"""``connlab COMMAND ...``: one subcommand per experiment.

Only the chosen command's module is imported, so ``connlab --help`` is instant.
User errors (bad flags, files, checkpoints) print one line and exit with code 2.
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
}


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
    from connlab.errors import UserError
    from connlab.train import TrainingDiverged

    try:
        return args.run(args) or 0
    except (UserError, ValueError) as err:
        print(f"connlab {args.command}: error: {err}", file=sys.stderr)
        return 2
    except TrainingDiverged as err:
        print(f"connlab {args.command}: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"connlab {args.command}: interrupted; continue with --resume --out RUN_DIR", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
