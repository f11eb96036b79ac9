"""Building blocks: gates, recurrent cells, skip connections, attention, the timestep embedding."""

from connlab.nn.attention import (
    MultiHeadAttention,
    TransformerBlock,
    causal_mask,
    scaled_dot_product_attention,
)
from connlab.nn.embedding import timestep_embedding
from connlab.nn.gates import GLU, LogisticGate, MixtureOfExperts, ProductGatedUnit, SoftmaxGate
from connlab.nn.rnn import GRU, RNN, GRUCell, RNNCell
from connlab.nn.skip import ConcatSkip, IdentityBlock, PlainBlock, ResidualBlock, ResidualMLPBlock

__all__ = [
    "GLU",
    "GRU",
    "RNN",
    "ConcatSkip",
    "GRUCell",
    "IdentityBlock",
    "LogisticGate",
    "MixtureOfExperts",
    "MultiHeadAttention",
    "PlainBlock",
    "ProductGatedUnit",
    "RNNCell",
    "ResidualBlock",
    "ResidualMLPBlock",
    "SoftmaxGate",
    "TransformerBlock",
    "causal_mask",
    "scaled_dot_product_attention",
    "timestep_embedding",
]
