"""Check for notebook 05: the course's identity block (CIML23_MNIST_wResidConnections_v0).

The block: Conv 16 1×1 → Conv 16 3×3 ("same") → Conv 64 1×1, each with a ReLU; with ``residual`` the block
input is added after the last ReLU (the course's place; He et al. 2015 add before it). The check builds the
student's block with ``residual=True`` and ``False``, traces the convolutions, the ReLUs and the additions
on a (2, 64, 14, 14) input, and names what differs.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from connlab.exercises.common import CheckFailed, fail, passed, run_piece
from connlab.models.autoencoder import count_parameters

RELUS = {torch.relu, torch.relu_, torch.Tensor.relu, torch.Tensor.relu_, torch.nn.functional.relu}
LAYERS = ((1, 16, "the first 1×1 convolution (Conv 16)"), (3, 16, "the 3×3 convolution (Conv 16)"),
          (1, 64, "the last 1×1 convolution (Conv 64)"))
BLOCK_PARAMETERS = 4_448  # 64·16 + 16  +  16·16·9 + 16  +  16·64 + 64


class _Activations(TorchFunctionMode):
    def __init__(self):
        super().__init__()
        self.relu_inputs: list[int] = []   # data_ptr of every tensor a ReLU was applied to

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func in RELUS and isinstance(args[0], torch.Tensor):
            self.relu_inputs.append(args[0].data_ptr())
        return func(*args, **(kwargs or {}))


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and torch.allclose(a, b, atol=1e-5)


def _check_layers(calls: list[dict]) -> None:
    for call, (k, width, name) in zip(calls, LAYERS):
        if call["module"].kernel_size != (k, k):
            fail(f"{name} has a {call['module'].kernel_size[0]}×{call['module'].kernel_size[1]} kernel; "
                 f"the course's is {k}×{k}")
        if call["output"].shape[1] != width:
            fail(f"{name} gives {call['output'].shape[1]} channels; the course's layer has {width} filters")
        if call["output"].shape[-1] != call["input"].shape[-1]:
            fail(f"{name} maps {call['input'].shape[-1]}×{call['input'].shape[-1]} to "
                 f"{call['output'].shape[-1]}×{call['output'].shape[-1]}: give the 3×3 convolution padding=1 "
                 "(Keras' padding='same') so the block input and output can be added")


def _run(make_block, residual: bool, x: torch.Tensor):
    block = run_piece(f"IdentityBlock(residual={residual})", make_block, residual)
    if not isinstance(block, nn.Module):
        fail(f"IdentityBlock(residual={residual}) should build an nn.Module, got {type(block).__name__}")
    calls = []
    hook = lambda m, i, o: calls.append({"module": m, "input": i[0].detach(), "output": o})  # noqa: E731
    handles = [m.register_forward_hook(hook) for m in block.modules() if isinstance(m, nn.Conv2d)]
    mode = _Activations()
    try:
        with torch.no_grad(), mode:
            try:
                out = run_piece(f"the block's forward (residual={residual})", block, x,
                                hint="each layer's input channels are the previous layer's output channels")
            except CheckFailed:
                _check_layers(calls)   # a layer of the wrong shape is the mistake, not the error it caused
                raise
    finally:
        for handle in handles:
            handle.remove()
    return block, calls, mode.relu_inputs, out


def check_identity_block(make_block) -> dict:
    """``make_block(residual)`` -> an nn.Module mapping (B, 64, 14, 14) to (B, 64, 14, 14)."""
    x = torch.rand(2, 64, 14, 14, generator=torch.Generator().manual_seed(0))  # after the stem's ReLU: ≥ 0
    for residual in (True, False):
        block, calls, relus, out = _run(make_block, residual, x)
        if len(calls) != 3:
            fail(f"the block ran {len(calls)} convolutions; the course's identity block has 3: "
                 "Conv 16 1×1 → Conv 16 3×3 → Conv 64 1×1")
        _check_layers(calls)
        last = calls[-1]["output"]
        h = torch.relu(last)
        if out.dim() == 4 and out.shape[1] == 2 * x.shape[1]:
            fail("you concatenated the block input; a residual block adds it, h + x (Keras' Add()), so the "
                 "output keeps 64 channels")
        if out.shape != x.shape:
            fail(f"the block should map {tuple(x.shape)} to the same shape, got {tuple(out.shape)}")
        if residual and _same(out, torch.relu(last + x)):
            fail("you added x before the last ReLU (He et al.'s place); the course adds the block input after "
                 "it: h = relu(conv(h)), then h + x at the marked place")
        for call, (_, _, name) in zip(calls, LAYERS):
            if call["output"].data_ptr() not in relus:
                fail(f"the ReLU after {name} is missing: the course gives each of the three layers "
                     "activation='relu'")
        if residual:
            if _same(out, h + x):
                continue
            if _same(out, h):
                fail("with residual=True the block input is not added: return h + x at the marked place")
            if _same(out, 2 * h):
                fail("you added h to itself; add the block's input x: h + x")
            if _same(out, h + calls[0]["input"]) or _same(out, h - x):
                fail("the sign is wrong: the block returns h + x")
            fail("with residual=True the block should return relu(conv1x1(…)) + x, the input added after the "
                 "last ReLU")
        else:
            if _same(out, h + x):
                fail("with residual=False the block should be the plain three layers: add x only when "
                     "self.residual is true")
            if not _same(out, h):
                fail("with residual=False the block should return the last ReLU's output as it is")
    n = count_parameters(block)
    if n != BLOCK_PARAMETERS:
        fail(f"the block has {n:,} parameters; the course's identity block has {BLOCK_PARAMETERS:,} "
             "(extra layers?)")
    passed(f"identity block: 14×14×64 → 1×1 Conv 16 → 3×3 Conv 16 → 1×1 Conv 64, a ReLU after each, the input "
           f"added after the last ReLU when residual; {n:,} parameters, the course's block")
    return {"parameters": n}
