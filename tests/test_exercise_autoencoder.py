"""Notebook 01's checks read the architecture: they accept every variant the course names and name each
typical mistake in one sentence (each mistake below -> the sentence a student reads)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from connlab.exercises import CheckFailed, check_encoder_decoder, check_skip_autoencoder
from connlab.models.autoencoder import AutoencoderConfig, DenoisingAutoencoder, sequential_autoencoder


class Net(nn.Module):
    """The course's network (C24_MNIST_Autoencoder_v3) written as a student would, with switches for mistakes."""

    def __init__(self, bottleneck=16, skips=(True, True), widen=None, transpose=False, dim=1, join="cat",
                 skip_map=("encoder", "encoder"), order="h_first", relu=(True,) * 5, last="logits",
                 up_kernel=2, conv4_width=64):
        super().__init__()
        widen = skips if widen is None else widen
        self.skips, self.dim, self.join, self.skip_map, self.order = skips, dim, join, skip_map, order
        self.relu, self.last = relu, last
        self.c1, self.c2 = nn.Conv2d(1, 64, 3, padding=1), nn.Conv2d(64, 128, 3, padding=1)
        self.b = nn.Conv2d(128, bottleneck, 3, padding=1) if bottleneck else None
        self.c3 = nn.Conv2d(bottleneck or 128, 128, 3, padding=1)
        self.c4 = nn.Conv2d(128 * (2 if widen[0] else 1), conv4_width, 3, padding=1)
        self.c5 = nn.Conv2d(conv4_width * (2 if widen[1] else 1), 1, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        if transpose:
            pad = dict(padding=1, output_padding=1) if up_kernel == 3 else {}
            self.up1 = nn.ConvTranspose2d(128, 128, up_kernel, stride=2, **pad)
            self.up2 = nn.ConvTranspose2d(conv4_width, conv4_width, up_kernel, stride=2, **pad)
        else:
            self.up1 = self.up2 = nn.Upsample(scale_factor=2)

    def _act(self, i, h):
        return F.relu(h) if self.relu[i] else h

    def _join(self, k, h, enc, pre):
        if not self.skips[k]:
            return h
        skip = {"encoder": enc, "pre_relu": pre, "decoder": h}[self.skip_map[k]]
        if self.join == "add":
            return h + skip
        return torch.cat([h, skip] if self.order == "h_first" else [skip, h], dim=self.dim)

    def forward(self, x):
        a1 = self.c1(x)
        e1 = self._act(0, a1)
        a2 = self.c2(self.pool(e1))
        e2 = self._act(1, a2)
        h = self.pool(e2)
        if self.b is not None:
            h = F.relu(self.b(h)) if self.relu[4] else self.b(h)
        h = self.up1(self._act(2, self.c3(h)))
        h = self._join(0, h, e2, a2)
        h = self.up2(self._act(3, self.c4(h)))
        h = self._join(1, h, e1, a1)
        out = self.c5(h)
        return {"logits": lambda: out, "sigmoid": lambda: torch.sigmoid(out), "relu": lambda: F.relu(out)}[self.last]()


def course_sequential(decoder_last_in=64):
    return nn.Sequential(
        nn.Conv2d(1, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(64, 128, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(128, 16, 3, padding=1), nn.ReLU(),
        nn.Conv2d(16, 128, 3, padding=1), nn.ReLU(), nn.Upsample(scale_factor=2),
        nn.Conv2d(128, 64, 3, padding=1), nn.ReLU(), nn.Upsample(scale_factor=2),
        nn.Conv2d(decoder_last_in, 1, 3, padding=1),
    )


VALID_SKIPS = {
    "the course's U-Net": (Net(), "260,177 parameters: the course's U-Net"),
    "cat([skip, h])": (Net(order="skip_first"), "260,177 parameters: the course's U-Net"),
    "no bottleneck (the lab's)": (Net(bottleneck=0), "370,753 parameters: the lab's U-Net"),
    "ConvTranspose2d up-sampling": (Net(transpose=True), "342,289 parameters: the course's U-Net (a 16-filter "
                                                         "bottleneck, 2 ConvTranspose2d up-samplings"),
    "the lab's model": (DenoisingAutoencoder(AutoencoderConfig("concat")), "370,753 parameters: the lab's U-Net"),
    "another bottleneck width": (Net(bottleneck=8), "a U-Net (a 8-filter bottleneck (the course's has 16)"),
}
VALID_PLAIN = {
    "the course's Sequential": (course_sequential(), "185,873 parameters: the course's encoder-decoder"),
    "the course's, Functional": (Net(skips=(False, False)), "185,873 parameters: the course's encoder-decoder"),
    "the lab's Sequential": (sequential_autoencoder(), "296,449 parameters: the lab's encoder-decoder"),
    "the lab's, ConvTranspose": (sequential_autoencoder("transpose"), "the lab's encoder-decoder (no bottleneck, "
                                                                       "2 ConvTranspose2d"),
}


@pytest.mark.parametrize("name", VALID_SKIPS)
def test_the_skip_check_accepts_each_variant_the_course_names(name, capsys):
    model, said = VALID_SKIPS[name]
    check_skip_autoencoder(model)
    assert said in capsys.readouterr().out


@pytest.mark.parametrize("name", VALID_PLAIN)
def test_the_encoder_decoder_check_accepts_each_variant(name, capsys):
    model, said = VALID_PLAIN[name]
    check_encoder_decoder(model)
    assert said in capsys.readouterr().out


CAT = "concatenate the channels, dim=1 in PyTorch (axis=−1 in Keras)"
SKIP_MISTAKES = {
    "concatenated along the width": (Net(dim=3), f"you concatenated along the width; {CAT}"),
    "along the width, dim=-1": (Net(dim=-1), f"you concatenated along the width; {CAT}"),
    "along the height": (Net(dim=2), f"you concatenated along the height; {CAT}"),
    "along the batch": (Net(dim=0), f"you concatenated along the batch; {CAT}"),
    "first skip left out, conv widened": (Net(skips=(False, True), widen=(True, True)),
                                          "built for 256 = 128 + 128 input channels, but forward hands it 128: the "
                                          "concatenation with the 14×14 encoder map is missing"),
    "no skips at all": (Net(skips=(False, False)), "the decoder's Conv 64 gets 128 channels; with the concatenation "
                                                   "skip from the 14×14 encoder map it should get 128 + 128 = 256"),
    "conv not widened for the skip": (Net(widen=(True, False)), "the decoder's last convolution (Conv 1) at 28×28 "
                                      "reads the concatenation of 64 + 64 = 128 channels but is built for 64: "
                                      "build it for 128 inputs"),
    "the decoder's map concatenated with itself": (Net(skip_map=("decoder", "encoder")),
                                                   "none of them is the 14×14 encoder map"),
    "the map before its ReLU": (Net(skip_map=("encoder", "pre_relu")),
                                "gets the 28×28 encoder map before its ReLU"),
    "add instead of concat": (Net(join="add", widen=(False, False)), "you added the 14×14 encoder map (h + skip); "
                              "this exercise concatenates it"),
    "add, conv widened": (Net(join="add"), "you added the encoder map to the decoder's (h + skip)"),
    "a missing ReLU in the decoder": (Net(relu=(True, True, False, True, True)),
                                      "the ReLU after the decoder's first convolution is missing"),
    "a missing ReLU in the encoder": (Net(relu=(True, False, True, True, True), skip_map=("pre_relu", "encoder")),
                                      "the ReLU after the encoder's second convolution is missing"),
    "a missing ReLU after the bottleneck": (Net(relu=(True, True, True, True, False)),
                                            "the ReLU after the bottleneck is missing"),
    "a sigmoid after the last convolution": (Net(last="sigmoid"), "you put a sigmoid after the last convolution"),
    "a ReLU after the last convolution": (Net(last="relu"), "a ReLU follows the last convolution"),
    "a Sequential for the U-Net": (course_sequential(decoder_last_in=128), "an nn.Sequential cannot carry a skip"),
    "Conv 32 for Conv 64": (Net(conv4_width=32), "the decoder's Conv 64 gives 32 channels; the course's layer is "
                                                 "Conv 64"),
    "ConvTranspose with kernel 3": (Net(transpose=True, up_kernel=3), "kernel_size=2, stride=2"),
}
PLAIN_MISTAKES = {
    "a Sequential's last conv built for 128 inputs": (
        course_sequential(decoder_last_in=128),
        "is built for 128 input channels, but the layer before gives 64: a chain without skips concatenates "
        "nothing, so build it for 64 (nn.Conv2d(64, 1, 3, padding=1))"),
    "a missing pooling": (nn.Sequential(*[m for i, m in enumerate(course_sequential()) if i != 5]),
                          "no convolution sees 7×7 maps: the encoder pools twice"),
    "skips in the plain network": (Net(), "the encoder-decoder without skips is a plain chain"),
    "a missing ReLU": (nn.Sequential(*[m for i, m in enumerate(course_sequential()) if i != 9]),
                       "the ReLU after the decoder's first convolution is missing"),
    "a kernel of 5": (nn.Sequential(*[nn.Conv2d(1, 64, 5, padding=2) if i == 0 else m
                                      for i, m in enumerate(course_sequential())]), "3×3 with padding=1"),
}


def _says(check, model):
    with pytest.raises(CheckFailed) as info:
        check(model)
    message = str(info.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("name", SKIP_MISTAKES)
def test_the_skip_check_names_each_mistake(name):
    model, sentence = SKIP_MISTAKES[name]
    assert sentence in _says(check_skip_autoencoder, model)


@pytest.mark.parametrize("name", PLAIN_MISTAKES)
def test_the_encoder_decoder_check_names_each_mistake(name):
    model, sentence = PLAIN_MISTAKES[name]
    assert sentence in _says(check_encoder_decoder, model)
