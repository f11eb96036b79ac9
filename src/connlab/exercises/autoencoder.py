"""Checks for notebook 01: the course's encoder-decoder, Sequential and Functional, with concatenation skips.

The course's network (C24_MNIST_Autoencoder_v3): Conv 64 → pool → Conv 128 → pool → a 16-filter bottleneck
at 7×7 → Conv 128 → up → Conv 64 → up → Conv 1, all 3×3 "same" with ReLU (the last gives logits here; the
loss applies the sigmoid). The checks *read* what the student built -- they trace forward with hooks: every
convolution's input and output (map size, channels), every ``torch.cat`` (along which dim, of what) and
every addition -- and accept each variant the course names: with or without the bottleneck (the lab's
variant has none), up-sampling by nearest-neighbour ``Upsample`` (Keras' UpSampling2D) or by
``ConvTranspose2d(kernel 2, stride 2)`` (the notebook's "another option"). A mistake is named as the mistake
("you concatenated along the width"), the parameter count reported with what it corresponds to.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from connlab.exercises.common import fail, passed, run_piece
from connlab.models.autoencoder import count_parameters

# Parameter counts the course and the lab name (3×3 convolutions, Upsample, both skips or none).
KNOWN_PARAMETERS = {
    185_873: "the course's encoder-decoder (16-filter bottleneck, no skips)",
    260_177: "the course's U-Net (16-filter bottleneck, both concatenation skips)",
    296_449: "the lab's encoder-decoder (no bottleneck, no skips)",
    370_753: "the lab's U-Net (no bottleneck, both concatenation skips)",
}
LECTURE_PARAMETERS = 260_177  # the course's U-Net
DIMS = {0: "the batch", 2: "the height", 3: "the width"}
CAT_FIX = "concatenate the channels, dim=1 in PyTorch (axis=−1 in Keras)"
ADDS = {torch.add, torch.Tensor.add, torch.Tensor.__add__, torch.Tensor.__radd__, torch.Tensor.__iadd__,
        torch.Tensor.add_}
CATS = {torch.cat, torch.concat, torch.concatenate}
SIGMOIDS = {torch.sigmoid, torch.Tensor.sigmoid, torch.special.expit, torch.nn.functional.sigmoid}
RELUS = {torch.relu, torch.relu_, torch.Tensor.relu, torch.Tensor.relu_, torch.nn.functional.relu}


@dataclass
class Trace:
    """What forward did: layer calls in order, and the joins (cat / add) with their operands."""
    layers: list[dict] = field(default_factory=list)   # {"module", "input", "output", "kind"}
    cats: list[dict] = field(default_factory=list)     # {"dim", "parts", "output"}
    adds: list[dict] = field(default_factory=list)     # {"parts", "output"}
    activations: list[tuple[str, int]] = field(default_factory=list)  # ("sigmoid" | "relu", input's data_ptr)


class _Joins(TorchFunctionMode):
    def __init__(self, trace: Trace):
        super().__init__()
        self.trace = trace

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if func in CATS:
            parts = list(args[0])
            dim = kwargs.get("dim", args[1] if len(args) > 1 else 0)
            if parts and isinstance(out, torch.Tensor):
                self.trace.cats.append({"dim": dim % parts[0].dim(), "parts": [p.detach() for p in parts],
                                        "output": out})
        elif func in ADDS and len(args) >= 2 and all(isinstance(a, torch.Tensor) and a.dim() == 4 for a in args[:2]):
            self.trace.adds.append({"parts": [a.detach() for a in args[:2]], "output": out})
        elif func in SIGMOIDS | RELUS and isinstance(args[0], torch.Tensor):
            self.trace.activations.append(("sigmoid" if func in SIGMOIDS else "relu", args[0].data_ptr()))
        return out


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and torch.allclose(a, b, atol=1e-6)


def _fixed_input() -> torch.Tensor:
    return torch.rand(2, 1, 28, 28, generator=torch.Generator().manual_seed(0))  # (B, 1, 28, 28)


def _name(conv_calls: list[dict], size: int) -> str:
    """The role of the next 3×3 convolution, from the sizes the earlier ones saw."""
    sizes = [c["input"].shape[-1] for c in conv_calls]
    decoding = any(b > a for a, b in zip(sizes, sizes[1:] + [size]))
    if not decoding:
        return {28: "the encoder's first convolution (Conv 64)", 14: "the encoder's second convolution (Conv 128)",
                7: "the convolution at 7×7"}.get(size, f"the convolution at {size}×{size}")
    return {14: "the decoder's Conv 64 at 14×14", 28: "the decoder's last convolution (Conv 1) at 28×28"}.get(
        size, f"the decoder's convolution at {size}×{size}")


def _check_widths(convs: list[dict]) -> None:
    """The widths of the convolutions run so far, by their role (the course's Conv 64, 128, ..., 128, 64)."""
    sizes = [c["input"].shape[-1] for c in convs]
    for i, c in enumerate(convs):
        decoding = any(b > a for a, b in zip(sizes[:i], sizes[1:i + 1]))
        later = sizes[i + 1:]
        want, name = {(28, False): (64, "the encoder's first convolution"),
                      (14, False): (128, "the encoder's second convolution"),
                      (14, True): (64, "the decoder's Conv 64")}.get((sizes[i], decoding), (None, ""))
        if sizes[i] == 7 and later and later[0] > 7:
            want, name = 128, "the decoder's first convolution"
        if want is not None and c["output"].shape[1] != want:
            fail(f"{name} gives {c['output'].shape[1]} channels; the course's layer is Conv {want}")


def _joined(trace: Trace, x: torch.Tensor) -> tuple[str, dict] | None:
    for kind, joins in (("cat", trace.cats), ("add", trace.adds)):
        for j in reversed(joins):
            if j["output"] is x or (j["output"].shape == x.shape and j["output"].data_ptr() == x.data_ptr()):
                return kind, j
    return None


def _trace(model: nn.Module, x: torch.Tensor, skips: bool) -> tuple[Trace, torch.Tensor]:
    trace = Trace()
    sequential = isinstance(model, nn.Sequential)

    def pre_hook(module, inputs):  # say what is wrong before the layer's own shape error
        h = inputs[0]
        join = _joined(trace, h)
        if join and join[0] == "cat" and join[1]["dim"] != 1:
            fail(f"you concatenated along {DIMS.get(join[1]['dim'], 'dim ' + str(join[1]['dim']))}; {CAT_FIX}")
        if isinstance(module, nn.ConvTranspose2d):
            return
        convs = [c for c in trace.layers if c["kind"] == "conv"]
        name = _name(convs, h.shape[-1])
        got, built = h.shape[1], module.in_channels
        if got == built:
            return
        _check_widths(convs)  # a layer of the wrong width upstream is the mistake, not this one's inputs
        if join is None and built == 2 * got and not skips:
            fail(f"{name} is built for {built} input channels, but the layer before gives {got}: a chain without "
                 f"skips concatenates nothing, so build it for {got} (nn.Conv2d({got}, {module.out_channels}, 3, "
                 "padding=1))")
        if join is None and built == 2 * got:
            if sequential:
                fail(f"{name} is built for {built} input channels, but an nn.Sequential cannot carry a skip: "
                     "write a module whose forward concatenates the encoder map (torch.cat([h, skip], dim=1))")
            fail(f"{name} is built for {built} = {got} + {got} input channels, but forward hands it {got}: the "
                 f"concatenation with the {h.shape[-1]}×{h.shape[-1]} encoder map is missing "
                 "(torch.cat([h, skip], dim=1))")
        if join and join[0] == "add":
            fail(f"you added the encoder map to the decoder's (h + skip); this exercise concatenates them, "
                 f"torch.cat([h, skip], dim=1), and {name} is built for {built} channels")
        if join and join[0] == "cat" and got == 2 * built:
            fail(f"{name} reads the concatenation of {' + '.join(str(p.shape[1]) for p in join[1]['parts'])} "
                 f"= {got} channels but is built for {built}: build it for {got} inputs")
        fail(f"{name} is built for {built} input channels but forward hands it {got}")

    def hook(module, inputs, output):
        kind = "up" if isinstance(module, nn.ConvTranspose2d) else "conv"
        trace.layers.append({"module": module, "input": inputs[0].detach(), "output": output.detach(), "kind": kind})

    layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    handles = [m.register_forward_pre_hook(pre_hook) for m in layers] + [m.register_forward_hook(hook) for m in layers]
    try:
        with torch.no_grad(), _Joins(trace):
            out = run_piece("the model's forward", model, x,
                            hint="compare the channel counts and map sizes the layers get with the course's")
    finally:
        for handle in handles:
            handle.remove()
    return trace, out


def _encoder_map(trace: Trace, size: int) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The encoder convolution at ``size``: (its output before the ReLU, after)."""
    for c in trace.layers:
        if c["kind"] == "conv" and c["input"].shape[-1] == size:
            return c["output"], torch.relu(c["output"])
    return None


def _check(trace: Trace, out: torch.Tensor, skips: bool) -> str:
    """Check the traced network; return what it is, in words."""
    convs = [c for c in trace.layers if c["kind"] == "conv"]
    ups = [c for c in trace.layers if c["kind"] == "up"]
    _check_kernels(convs, ups)
    n7 = _check_sizes(convs)
    enc1, enc2, *mid, dec2, dec3 = convs
    bottleneck = mid[0] if n7 == 2 else None
    _check_channels(enc1, enc2, mid[-1], dec2, dec3)
    chain = [enc1, enc2] + mid + [dec2, dec3]
    _check_relus(trace, chain)
    _check_output(trace, out, dec3["output"])
    # the skips: which map is joined to which, and how
    for size, conv in {14: dec2, 28: dec3}.items():
        _check_skip(trace, chain, conv, size, skips)
    return _describe(bottleneck, ups, skips)


def _check_kernels(convs: list[dict], ups: list[dict]) -> None:
    """Every convolution 3×3 keeping the map size; every up-sampling a 2×2 stride-2 transposed convolution."""
    for c in convs:
        if c["module"].kernel_size != (3, 3) or c["output"].shape[-1] != c["input"].shape[-1]:
            fail(f"every convolution here is 3×3 with padding=1 (Keras' padding='same'); one has kernel "
                 f"{tuple(c['module'].kernel_size)} and maps {c['input'].shape[-1]}×{c['input'].shape[-1]} to "
                 f"{c['output'].shape[-1]}×{c['output'].shape[-1]}")
    for u in ups:
        if u["module"].kernel_size != (2, 2) or u["module"].stride != (2, 2):
            fail(f"a ConvTranspose2d up-samples by 2 with kernel_size=2, stride=2 (the course's Conv2DTranspose "
                 f"option); yours has kernel {tuple(u['module'].kernel_size)}, stride {tuple(u['module'].stride)}")


def _check_sizes(convs: list[dict]) -> int:
    """The map sizes the convolutions see: 28, 14, 7 (, 7), 14, 28; returns how many see 7×7 (2: a bottleneck)."""
    sizes = [c["input"].shape[-1] for c in convs]
    n7 = sizes.count(7)
    plan = [28, 14] + [7] * n7 + [14, 28]
    if sizes != plan or n7 not in (1, 2):
        if sizes[:2] != [28, 14]:
            fail(f"the encoder's convolutions see {' and '.join(f'{s}×{s}' for s in sizes[:2])} maps; they should "
                 "see 28×28, then 14×14 after one MaxPool2d(2) (and the decoder starts at 7×7 after a second)")
        if 7 not in sizes:
            fail("no convolution sees 7×7 maps: the encoder pools twice, 28×28 → 14×14 → 7×7 (a MaxPool2d(2) "
                 "after each encoder convolution)")
        fail(f"the convolutions see maps of {', '.join(f'{s}×{s}' for s in sizes)}; the course's network: "
             "28, 14 (encoder), 7 (bottleneck), 7, 14, 28 (decoder, one up-sampling by 2 between each), with "
             "the bottleneck optional")
    return n7


def _check_channels(enc1: dict, enc2: dict, dec1: dict, dec2: dict, dec3: dict) -> None:
    """The course's channel counts: Conv 64, 128 (encoder), 128, 64, 1 (decoder)."""
    widths = [(enc1, 64, "the encoder's first convolution"), (enc2, 128, "the encoder's second convolution"),
              (dec1, 128, "the decoder's first convolution"), (dec2, 64, "the decoder's Conv 64"),
              (dec3, 1, "the decoder's last convolution")]
    for c, want, name in widths:
        if c["output"].shape[1] != want:
            fail(f"{name} gives {c['output'].shape[1]} channels; the course's layer is Conv {want}")


def _check_relus(trace: Trace, chain: list[dict]) -> None:
    """The ReLUs: every convolution's output is activated before the next layer reads it."""
    for before, after in zip(chain, chain[1:]):
        h = after["input"]
        join = _joined(trace, h)
        part = join[1]["parts"][0] if join else h  # the decoder's own map comes first in cat([h, skip])
        i, j = (next(k for k, c in enumerate(trace.layers) if c is call) for call in (before, after))
        via_transpose = any(c["kind"] == "up" for c in trace.layers[i:j])  # its output may be negative
        if (part < 0).any() and not via_transpose:
            fail(f"the ReLU after {_role(chain, before)} is missing: its output reaches the next layer with "
                 "negative values (Keras' activation='relu')")


def _check_output(trace: Trace, out: torch.Tensor, logits: torch.Tensor) -> None:
    """The model returns the last convolution's ``logits`` as they are: no ReLU or sigmoid after it, (2, 1, 28, 28)."""
    after_last = {kind for kind, ptr in trace.activations if ptr == logits.data_ptr()}
    if "relu" in after_last and _same(out, torch.relu(logits)):
        fail("a ReLU follows the last convolution: it gives logits, which must be free to go negative "
             "(no activation after Conv 1; the loss applies the sigmoid)")
    if "sigmoid" in after_last and _same(out, torch.sigmoid(logits)):
        fail("you put a sigmoid after the last convolution: here the model gives logits and the loss, "
             "F.binary_cross_entropy_with_logits, applies the sigmoid (the pair is Keras' Conv2D(1, "
             "activation='sigmoid') with binary_crossentropy); remove it")
    if tuple(out.shape) != (2, 1, 28, 28):
        fail(f"the model maps a (2, 1, 28, 28) batch to {tuple(out.shape)}; it should give (2, 1, 28, 28)")
    if not _same(out, logits):
        fail("the model's output is not the last convolution's: return its logits as they are")


def _check_skip(trace: Trace, chain: list[dict], conv: dict, size: int, skips: bool) -> None:
    """The decoder convolution ``conv`` at ``size``: with ``skips`` it reads the concatenation of its own map
    and the activated encoder map of that size; without, a plain chain."""
    join = _joined(trace, conv["input"])
    enc = _encoder_map(trace, size)
    if not skips:
        if join:
            fail(f"{_role(chain, conv)} reads a {'concatenation' if join[0] == 'cat' else 'sum'}: "
                 "the encoder-decoder without skips is a plain chain")
        return
    if join is None:
        fail(f"{_role(chain, conv)} gets {conv['input'].shape[1]} channels; with the concatenation skip from "
             f"the {size}×{size} encoder map it should get "
             f"{conv['input'].shape[1]} + {enc[0].shape[1]} = {conv['input'].shape[1] + enc[0].shape[1]}")
    if join[0] == "add":
        fail(f"you added the {size}×{size} encoder map (h + skip); this exercise concatenates it, "
             "torch.cat([h, skip], dim=1), so the next convolution sees both (adding is the residual "
             "notebook's join)")
    parts = join[1]["parts"]
    if any(_same(p, enc[1]) for p in parts):
        return
    if any(_same(p, enc[0]) for p in parts):
        fail(f"{_role(chain, conv)} gets the {size}×{size} encoder map before its ReLU; concatenate the "
             "activated map, as Keras' Conv2D(..., activation='relu') gives it")
    fail(f"{_role(chain, conv)} reads a concatenation of {' + '.join(str(p.shape[1]) for p in parts)} "
         f"channels, but none of them is the {size}×{size} encoder map (the ReLU output of the encoder's "
         f"convolution at {size}×{size}): concatenate that map, not a copy of the decoder's")


def _role(chain: list[dict], call: dict) -> str:
    names = ["the encoder's first convolution", "the encoder's second convolution"]
    names += (["the bottleneck"] if len(chain) == 6 else []) + ["the decoder's first convolution",
                                                                 "the decoder's Conv 64", "the decoder's last convolution"]
    return next(n for c, n in zip(chain, names) if c is call)


def _describe(bottleneck: dict | None, ups: list[dict], skips: bool) -> str:
    who = "the course's" if bottleneck is not None and bottleneck["output"].shape[1] == 16 else "the lab's"
    what = "U-Net" if skips else "encoder-decoder"
    if bottleneck is None:
        extra = "no bottleneck"
    else:
        extra = f"a {bottleneck['output'].shape[1]}-filter bottleneck"
        if bottleneck["output"].shape[1] != 16:
            who, extra = "a", extra + " (the course's has 16)"
    if ups:
        extra += f", {len(ups)} ConvTranspose2d up-sampling{'s' if len(ups) > 1 else ''}"
    return f"{who} {what} ({extra}{', both concatenation skips' if skips else ''})"


def _report(model: nn.Module, description: str) -> str:
    n = count_parameters(model)
    known = KNOWN_PARAMETERS.get(n)
    return f"{n:,} parameters: {known if known else description}"


def check_encoder_decoder(model: nn.Module) -> dict:
    """The plain encoder-decoder (no skips), e.g. the ``nn.Sequential`` one: layers, map sizes, channels."""
    trace, out = _trace(model, _fixed_input(), skips=False)
    description = _check(trace, out, skips=False)
    n = count_parameters(model)
    passed(f"encoder-decoder: 28×28×1 → 14×14×64 → 7×7×128 → 14×14×64 → 28×28×1; {_report(model, description)}")
    return {"parameters": n, "network": KNOWN_PARAMETERS.get(n, description)}


def check_skip_autoencoder(model: nn.Module) -> dict:
    """The Functional model with both concatenation skips (the course's U-Net)."""
    trace, out = _trace(model, _fixed_input(), skips=True)
    description = _check(trace, out, skips=True)
    n = count_parameters(model)
    passed(f"U-Net: the 14×14 and 28×28 encoder maps are concatenated along the channels into the decoder; "
           f"{_report(model, description)}")
    return {"parameters": n, "network": KNOWN_PARAMETERS.get(n, description)}
