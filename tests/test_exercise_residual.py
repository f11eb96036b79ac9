"""Notebook 05's check: the course's identity block -- each typical mistake -> its sentence; valid forms accepted."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from connlab.exercises import CheckFailed, check_identity_block
from connlab.nn import IdentityBlock as LabBlock


class Block(nn.Module):
    """The notebook's solution, with switches for typical mistakes."""

    def __init__(self, residual, mistake=None):
        super().__init__()
        self.residual, self.mistake = residual, mistake
        k = 3 if mistake == "3×3 last" else 1
        self.conv1 = nn.Conv2d(64, 16, 1)
        self.conv2 = nn.Conv2d(16, 16, 3, padding=0 if mistake == "no padding" else 1)
        self.conv3 = nn.Conv2d(16, 32 if mistake == "Conv 32" else 64, k, padding=k // 2)

    def forward(self, x):
        h = F.relu(self.conv1(x))
        h = self.conv2(h) if self.mistake == "missing ReLU" else F.relu(self.conv2(h))
        if self.mistake == "no padding":
            h = F.pad(h, (1, 1, 1, 1))
        h = self.conv3(h)
        if self.mistake == "add before ReLU" and self.residual:
            return F.relu(h + x)
        h = F.relu(h)
        if not self.residual and self.mistake != "always added":
            return h
        return {"not added": lambda: h, "concatenated": lambda: torch.cat([h, x], dim=1), "h + h": lambda: h + h,
                "sign": lambda: h - x}.get(self.mistake, lambda: h + x)()


def test_the_check_accepts_the_solution_and_the_labs_block(capsys):
    assert check_identity_block(Block)["parameters"] == 4_448
    check_identity_block(lambda residual: LabBlock(64, 16, residual))               # nn.ReLU modules, Sequential
    check_identity_block(lambda residual: LabBlock(64, 16, residual).requires_grad_(False))
    assert "4,448 parameters, the course's block" in capsys.readouterr().out


MISTAKES = {
    "add before ReLU": "you added x before the last ReLU",
    "missing ReLU": "the ReLU after the 3×3 convolution (Conv 16) is missing",
    "not added": "with residual=True the block input is not added",
    "concatenated": "you concatenated the block input; a residual block adds it",
    "h + h": "you added h to itself",
    "sign": "the sign is wrong",
    "always added": "with residual=False the block should be the plain three layers",
    "no padding": "give the 3×3 convolution padding=1",
    "Conv 32": "the last 1×1 convolution (Conv 64) gives 32 channels",
    "3×3 last": "the last 1×1 convolution (Conv 64) has a 3×3 kernel",
}


@pytest.mark.parametrize("mistake", MISTAKES)
def test_the_check_names_each_mistake(mistake):
    with pytest.raises(CheckFailed) as info:
        check_identity_block(lambda residual: Block(residual, mistake))
    assert MISTAKES[mistake] in str(info.value) and "\n" not in str(info.value)
