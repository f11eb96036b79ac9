"""The one list of connlab's commands: ``REGISTRY``.

Each entry names its module by path, so building ``connlab --help`` imports nothing heavy;
the module is imported when its command runs, or when the report needs its section.  The CLI
builds its parser from this list, ``connlab demo`` its plan, and ``connlab report`` its order
and sections.  Adding an experiment is one module plus one ``register(Experiment(...))``.

An experiment module provides ``add_arguments(parser)`` (sets ``run``) and, when it states a
lecture claim, ``section(run) -> connlab.experiments.section.Section``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass


@dataclass(frozen=True)
class DemoStep:
    """One part of ``connlab demo``: the command's flags at the two demo sizes.

    Data flags (``--dataset``, ``--data-dir``) are added when ``takes_dataset``; ``--device`` always.
    A step that does not own its folder (``owns_folder=False``) gets ``--run FOLDER`` instead of
    ``--out``/``--resume`` and is done when ``done_file`` (a glob) exists there. A second step of one
    command names its part and folder (``name``, ``folder``; default: the command). A course preset
    step takes ``--data-dir`` alone (``takes_data_dir``): its preset picks the course's digits.
    """

    cpu: tuple[str, ...]
    full: tuple[str, ...]
    action: str = ""                 # a sub-command, e.g. "train" for ``connlab diffusion train``
    takes_dataset: bool = False
    done_file: str = "summary.json"
    owns_folder: bool = True
    name: str = ""                   # the part's name in demo.json and --only (default: the command)
    folder: str = ""                 # its run folder in the demo folder (default: the experiment's name)
    takes_data_dir: bool = False


@dataclass(frozen=True)
class Panel:
    """A live panel of ``connlab explore`` for this command's runs.

    ``export`` names the function of ``connlab.explore.export`` that turns the run folder into the panel's
    ONNX models (named, not imported: the explorer sits above the experiments). ``folder`` is the run's
    folder in a demo folder, hence its section in report.html; ``make`` the flags that make such a run.
    ``course``: the flags of the ``--preset course`` run the panel also shows (folder ``NAME-course``): the
    course's exercise beside the lab's setting, with a switch between them; empty where there is none.
    """

    part: str                        # the panel's name in the page's manifest
    title: str
    export: str
    element: str                     # the panel's <section id> in explorer.html
    folder: str = ""                 # default: the command's name
    make: tuple[str, ...] = ()
    course: tuple[str, ...] = ()


@dataclass(frozen=True)
class Experiment:
    name: str                        # the command: ``connlab NAME``
    help: str                        # one line, for --help
    module: str                      # e.g. "connlab.experiments.rnn", imported only when needed
    lecture: int | None = None       # place in the lecture (report and demo order); None: not a lecture part
    demo: tuple[DemoStep, ...] = ()
    config: str | None = None        # the name of the module's config dataclass
    section: str | None = None       # the name of the module's ``section(run)`` builder
    single_process: tuple[str, ...] = ()   # actions ("" = the command itself) that refuse torchrun
    panels: tuple[Panel, ...] = ()   # what the explorer shows of its runs, in order
    notebook: str = ""               # its exercise notebook (notebooks/src/NAME.py), if it has one

    def load(self):
        return importlib.import_module(self.module)

    def add_arguments(self, parser) -> None:
        self.load().add_arguments(parser)

    @property
    def config_class(self):
        return getattr(self.load(), self.config) if self.config else None

    @property
    def section_builder(self):
        """``section(run) -> Section``, or None when the experiment states no claim."""
        return getattr(self.load(), self.section) if self.section else None


REGISTRY: dict[str, Experiment] = {}


def register(entry: Experiment) -> Experiment:
    """Add (or replace) an experiment; the CLI, the demo and the report see it from then on."""
    REGISTRY[entry.name] = entry
    return entry


def unregister(name: str) -> None:
    REGISTRY.pop(name, None)


def lecture_order() -> list[Experiment]:
    """The lecture's parts in order (entries with a ``lecture`` place)."""
    return sorted((e for e in REGISTRY.values() if e.lecture is not None), key=lambda e: e.lecture)


def _s(*argv) -> tuple[str, ...]:
    return tuple(str(a) for a in argv)


# ``connlab demo --preset course``: every course protocol at n = 5 seeds, one part each, in the lecture's order
# (each command's own ``--preset course``; a command without one yet is refused by name before anything runs).
COURSE_DEMO: tuple[tuple[str, DemoStep], ...] = tuple(
    (command, DemoStep(_s("--preset", "course", *extra, "--seeds", 5), _s("--preset", "course", *extra, "--seeds", 5),
                       name=f"{command} course", folder=f"{command}-course", takes_data_dir=data))
    for command, extra, data in (("autoencoder", ("--skip", "all"), True), ("depth", (), True), ("ladder", (), True),
                                 ("attention", (), False)))


for _entry in (
    Experiment("demo", "the whole lab in one command: every experiment, then report.html",
               "connlab.demo", single_process=("",)),
    Experiment("report", "rebuild report.html from existing run folders", "connlab.report.command",
               single_process=("",)),
    Experiment("data", "describe a data set as one JSON object", "connlab.experiments.data_info",
               single_process=("",)),
    Experiment("autoencoder", "Exercise 1: denoising autoencoder without/with skips",
               "connlab.experiments.autoencoder", lecture=40, config="AutoencoderExperiment", section="section",
               panels=(Panel("autoencoder", "the three autoencoders", "export_autoencoders", "ae-part",
                             make=("--skip", "all"), course=("--preset", "course", "--skip", "all")),),
               notebook="01_autoencoder",
               # 5 seeds paired by seed for the skip verdicts (docs/evidence-budgets.md §4: 60 steps per seed)
               demo=(DemoStep(_s("--skip", "all", "--epochs", 2, "--seeds", 5, "--limit", 960, "--batch-size", 32,
                                 "--iterate", 4),
                              _s("--skip", "all", "--epochs", 10, "--seeds", 5, "--iterate", 5), takes_dataset=True),
                     # the course's Exercise 1 exactly, at the largest n of seeds that fits the demo's 12 minutes
                     # (2; docs/course-exercise1.md), early stopping on 250 validation digits to save time; each
                     # row says what n would settle it; `demo --preset course`: n = 5
                     DemoStep(_s("--preset", "course", "--skip", "all", "--seeds", 2, "--monitor-images", 250),
                              _s("--preset", "course", "--skip", "all", "--seeds", 5), name="autoencoder course",
                              folder="autoencoder-course", takes_data_dir=True))),
    Experiment("ladder", "Exercise 2: incremental denoising with T steps", "connlab.experiments.ladder",
               lecture=60, config="LadderExperiment", section="section",
               panels=(Panel("ladder", "the ladder", "export_ladder", "ladder-part", course=("--preset", "course")),),
               notebook="02_incremental_denoising",
               demo=(DemoStep(_s("--steps", 5, "--epochs", 2, "--limit", 2000, "--batch-size", 32,
                                 "--eval-images", 200),
                              _s("--steps", 10, "--epochs", 10, "--sweep", "1,5,10,20"), takes_dataset=True),)),
    Experiment("gates", "logistic units, product gates, softmax gates: the lecture's plots",
               "connlab.experiments.gates", lecture=10, config="GatesExperiment", section="section",
               demo=(DemoStep(_s("--epochs", 20, "--train-points", 2000), ()),)),
    Experiment("rnn", "plain RNN vs GRU vs LSTM on the adding problem", "connlab.experiments.rnn",
               lecture=20, config="RNNExperiment", section="section",
               # GRU vs plain RNN over 5 seeds; the LSTM reference is left to the full size (its seeds cost)
               demo=(DemoStep(_s("--lengths", "10,50", "--train-size", 6400, "--epochs", 5, "--models", "rnn,gru",
                                 "--seeds", 5), _s("--full", "--seeds", 5)),)),
    Experiment("depth", "plain vs residual networks as depth grows", "connlab.experiments.depth",
               lecture=50, config="DepthExperiment", section="section", notebook="05_residual",
               # regime d of docs/evidence-budgets.md §3: the shallowest plain net learns (test error ≈ 13 %);
               # depth 8 dropped to fit the demo's time (§4: −35 CPU s; add "2,8,16" back where time allows)
               demo=(DemoStep(_s("--depths", "2,16", "--epochs", 3, "--limit", 3000, "--batch-size", 32, "--lr", 3e-3,
                                 "--seeds", 5), _s("--full", "--seeds", 5), takes_dataset=True),)),
    Experiment("skipmlp", "an MLP with and without the input carried forward", "connlab.experiments.skipmlp",
               lecture=30, config="SkipMLPExperiment", section="section",
               demo=(DemoStep(_s("--epochs", 4, "--seeds", 5, "--limit", 4000), _s("--epochs", 10, "--seeds", 5),
                              takes_dataset=True),)),
    Experiment("explore", "write explorer.html: the trained models of a run folder live in one offline page",
               "connlab.explore", single_process=("",)),
    Experiment("grade", "grade students' exercise notebooks: results.json each, grades.csv, overview.html",
               "connlab.grade", single_process=("",)),
    Experiment("classifier", "the MNIST classifier behind the diffusion quality metric",
               "connlab.experiments.classifier", config="ClassifierExperiment"),
    Experiment("diffusion", "DDPM / DDIM on MNIST: train, sample, eval", "connlab.experiments.diffusion",
               lecture=70, config="DiffusionExperiment", section="section", single_process=("sample", "eval"),
               panels=(Panel("diffusion", "diffusion", "export_diffusion", "diffusion-part", make=("train",)),),
               notebook="03_diffusion",
               demo=(DemoStep(_s("--preset", "demo", "--eval-num", 200), _s("--preset", "default", "--eval-num", 2000),
                              action="train", takes_dataset=True),
                     # --ladder-run: the side-by-side chains (the report renders their page), dropped by the demo when the ladder part did not finish
                     DemoStep(_s("--sampler", "ddim", "--steps", 20, "--num", 60, "--ladder-run", "ladder"),
                              _s("--sampler", "ddpm", "--num", 100, "--ladder-run", "ladder"), action="sample",
                              done_file="samples-*.png", owns_folder=False),
                     DemoStep(_s("--num", 100), _s("--num", 2000), action="eval", done_file="eval.json",
                              owns_folder=False))),
    Experiment("vit", "a small Vision Transformer on MNIST, with attention maps", "connlab.experiments.vit",
               lecture=80, config="ViTExperiment", section="section",
               panels=(Panel("vit", "the ViT", "export_vit", "vit-part"),),
               demo=(DemoStep(_s("--epochs", 4, "--dim", 48, "--depth", 2, "--warmup-steps", 20), _s("--full"),
                              takes_dataset=True),)),
    Experiment("attention", "a sequence task where the attention pattern is visible", "connlab.experiments.attention",
               lecture=90, config="AttentionExperiment", section="section", notebook="04_attention",
               panels=(Panel("attention", "attention as a softmax gate", "export_attention", "attention-part"),
                       Panel("toy_attention", "the toy attention head", "export_toy_head", "toy-part",
                             folder="attention-course", make=("--preset", "course"))),
               demo=(DemoStep(_s("--epochs", 8, "--train-size", 6000), _s("--epochs", 30, "--train-size", 20000)),
                     # Part II's exercise as the course runs it, the toy head (seconds on 2 cores): n = 5 at both sizes
                     DemoStep(_s("--preset", "course", "--seeds", 5), _s("--preset", "course", "--seeds", 5),
                              name="attention course", folder="attention-course"))),
):
    register(_entry)
del _entry
