"""Checks for notebook 01: the lecture's encoder-decoder, Sequential and Functional, with concat skips.

The reference is the lab's model (``connlab.models.autoencoder``): the lecture's layers
Conv 64 → pool → Conv 128 → pool | Conv 128 → up → Conv 64 → up → Conv 1, 3×3 "same"
convolutions. With both concatenation skips (the 14×14 encoder map into the decoder's second
convolution, the 28×28 map into the last) it has ``LECTURE_PARAMETERS`` = 370,753 parameters.
"""

from __future__ import annotations

import torch
from torch import nn

from connlab.exercises.common import fail, passed, run_piece
from connlab.models.autoencoder import AutoencoderConfig, DenoisingAutoencoder, count_parameters

LECTURE_PARAMETERS = 370_753  # the lecture's U-Net: both concat skips (equal to the lab's "concat" model)

# The five convolutions in the order forward runs them: (name, out channels, input size, in channels without/with skips)
CONVS = (
    ("the encoder's first convolution", 64, 28, 1, 1),
    ("the encoder's second convolution", 128, 14, 64, 64),
    ("the decoder's first convolution", 128, 7, 128, 128),
    ("the decoder's second convolution", 64, 14, 128, 256),
    ("the decoder's last convolution", 1, 28, 64, 128),
)
SKIP_FROM = {3: (1, "14×14", "128 + 128 = 256"), 4: (0, "28×28", "64 + 64 = 128")}  # conv index -> encoder conv


def _fixed_input() -> torch.Tensor:
    return torch.rand(2, 1, 28, 28, generator=torch.Generator().manual_seed(0))  # (B, 1, 28, 28)


def _trace(model: nn.Module, x: torch.Tensor) -> tuple[list[dict], torch.Tensor]:
    """Run ``model`` on x, recording every Conv2d call in order: its module, input and output."""
    calls: list[dict] = []

    def hook(module, inputs, output):
        calls.append({"module": module, "input": inputs[0].detach(), "output": output.detach()})

    def pre_hook(module, inputs):  # say what is wrong before the convolution's own shape error
        i = len(calls)
        name = CONVS[i][0] if i < len(CONVS) else f"convolution {i + 1}"
        if inputs[0].shape[0] != len(x):
            fail(f"{name} gets a batch of {inputs[0].shape[0]} maps for {len(x)} images: "
                 "concatenate along the channel dimension, torch.cat([h, skip], dim=1)")
        got, built = inputs[0].shape[1], module.in_channels
        if got != built:
            hint = ""
            if i in SKIP_FROM and built == CONVS[i][4] and got == CONVS[i][3]:
                hint = (f": the concatenation with the {SKIP_FROM[i][1]} encoder map is missing in forward "
                        f"(torch.cat([h, skip], dim=1))")
            elif i in SKIP_FROM and built == CONVS[i][3] and got == CONVS[i][4]:
                hint = (f": the concatenation adds the encoder map's channels, so build it for "
                        f"{SKIP_FROM[i][2].split(' = ')[0]} inputs")
            fail(f"{name} is built for {built} input channels but forward hands it {got}{hint}")

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    handles += [m.register_forward_pre_hook(pre_hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    try:
        with torch.no_grad():
            out = run_piece("the model's forward", model, x,
                            hint="compare the channel counts and map sizes the layers get with the lecture's")
    finally:
        for h in handles:
            h.remove()
    return calls, out


def _check_calls(calls: list[dict], out: torch.Tensor, skips: bool) -> None:
    if len(calls) != len(CONVS):
        fail(f"forward ran {len(calls)} convolutions; the lecture's network runs 5: "
             "Conv 64, Conv 128 (encoder) and Conv 128, Conv 64, Conv 1 (decoder)")
    for i, (call, (name, c_out, size, plain_in, skip_in)) in enumerate(zip(calls, CONVS)):
        c_in, h = call["input"].shape[1], call["input"].shape[-1]
        want_in = skip_in if skips else plain_in
        if call["output"].shape[1] != c_out:
            fail(f"{name} gives {call['output'].shape[1]} channels; the lecture's layer is Conv {c_out}")
        if h != size:
            fail(f"{name} sees {h}×{h} maps; it should see {size}×{size} "
                 "(check the pooling and upsampling around it)")
        if c_in != want_in:
            if skips and i in SKIP_FROM:
                _, where, total = SKIP_FROM[i]
                fail(f"{name} gets {c_in} channels; with the concat skip from the {where} encoder map "
                     f"it should get {total}")
            fail(f"{name} gets {c_in} channels; it should get {want_in}")
        if not isinstance(call["module"], nn.Conv2d) or call["module"].kernel_size != (3, 3) \
                or call["output"].shape[-1] != h:
            fail(f"{name} should be a 3×3 convolution with padding=1 (Keras' padding='same'), "
                 f"got kernel {call['module'].kernel_size} and {h}×{h} → {call['output'].shape[-1]}×"
                 f"{call['output'].shape[-1]}")
    if tuple(out.shape) != (2, 1, 28, 28):
        fail(f"the model maps a (2, 1, 28, 28) batch to {tuple(out.shape)}; it should give (2, 1, 28, 28)"
             + (" — concatenate along the channel dimension, dim=1" if out.shape[0] != 2 else ""))
    if skips:
        for i, (j, where, _) in SKIP_FROM.items():
            enc = calls[j]["output"]
            got = calls[i]["input"]
            halves = (got[:, :enc.shape[1]], got[:, -enc.shape[1]:])  # torch.cat([h, skip]) or ([skip, h])
            if not any(torch.allclose(part, torch.relu(enc), atol=1e-6) for part in halves):
                if any(torch.allclose(part, enc, atol=1e-6) for part in halves):
                    fail(f"{CONVS[i][0]} gets the {where} encoder map before its ReLU; "
                         "concatenate the activated map, as Keras' Conv2D(..., activation='relu') gives it")
                fail(f"{CONVS[i][0]} gets {got.shape[1]} channels, but none of them is the {where} encoder map "
                     f"(the ReLU output of {CONVS[j][0]}): concatenate that map, not a copy of the decoder's")


def check_encoder_decoder(model: nn.Module) -> dict:
    """The plain encoder-decoder (no skips), e.g. the ``nn.Sequential`` one: layers, shapes, parameters."""
    calls, out = _trace(model, _fixed_input())
    _check_calls(calls, out, skips=False)
    n, want = count_parameters(model), count_parameters(DenoisingAutoencoder(AutoencoderConfig("none")))
    if n != want:
        fail(f"the model has {n:,} parameters; the lecture's encoder-decoder without skips has {want:,}")
    passed(f"encoder-decoder: 28×28×1 → 14×14×64 → 7×7×128 → 14×14×64 → 28×28×1, {n:,} parameters, as in the lecture")
    return {"parameters": n}


def check_skip_autoencoder(model: nn.Module) -> dict:
    """The Functional model with both concatenation skips (the lecture's U-Net)."""
    calls, out = _trace(model, _fixed_input())
    _check_calls(calls, out, skips=True)
    n = count_parameters(model)
    if n != LECTURE_PARAMETERS:
        fail(f"the model has {n:,} parameters; the lecture's U-Net with both concatenation skips has "
             f"{LECTURE_PARAMETERS:,}")
    passed(f"U-Net: the 14×14 and 28×28 encoder maps are concatenated into the decoder "
           f"(256 and 128 input channels), {n:,} parameters, as in the lecture")
    return {"parameters": n}
