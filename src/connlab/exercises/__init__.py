"""Checks for the lecture's notebook exercises (``notebooks/0N_*.ipynb``).

Each ``check_*`` runs the student's piece on a fixed input and either raises ``CheckFailed``
with one sentence naming the mistake, or prints what it confirmed (with the reference numbers)
and returns them. ``YourTurn`` is what the exercise notebooks raise at their marked places.

This is the exercise layer: it may import the models, the diffusion math and the blocks;
nothing in the lab imports it.
"""

from connlab.exercises.common import CheckFailed, YourTurn
from connlab.exercises.autoencoder import LECTURE_PARAMETERS, check_encoder_decoder, check_skip_autoencoder
from connlab.exercises.ladder import check_end_point, check_rung, check_training_pairs
from connlab.exercises.diffusion import check_ddim_step, check_q_sample
from connlab.exercises.attention import check_attention
from connlab.exercises.residual import check_identity_block
from connlab.exercises.session import show, start

__all__ = [
    "CheckFailed", "YourTurn", "LECTURE_PARAMETERS",
    "check_encoder_decoder", "check_skip_autoencoder",
    "check_end_point", "check_rung", "check_training_pairs",
    "check_q_sample", "check_ddim_step",
    "check_attention",
    "check_identity_block",
    "show", "start",
]
