"""Notebook 02's checks: the course's interpolation ladder -- each typical mistake -> the sentence a student reads,
and the correct pieces (written more than one way) accepted."""

from __future__ import annotations

import pytest
import torch

from connlab.data.noise import rounded_endpoint
from connlab.diffusion.ladder import interpolation_ladder, pairs_from_rungs
from connlab.exercises import CheckFailed, check_end_point, check_rung, check_training_pairs


def end_point(x0, mag2use, dist2try, generator):
    if dist2try == "norm":
        z = torch.randn(x0.shape, generator=generator)
    else:
        z = torch.rand(x0.shape, generator=generator) * 2 - 1
    return (x0 + torch.round(mag2use * z)).clamp(0, 1)


def end_point_with(mistake):
    def piece(x0, mag2use, dist2try, generator):
        mag = 1.0 if mistake == "mag ignored" else mag2use
        dist = "norm" if mistake == "dist ignored" else dist2try
        gen = None if mistake == "generator ignored" else generator
        if mistake == "one generator for all":
            gen = torch.Generator().manual_seed(0)
        z = torch.randn(x0.shape, generator=gen) if dist == "norm" else torch.rand(x0.shape, generator=gen)
        if dist == "uniform" and mistake != "U(0, 1)":
            z = 2 * z - 1
        if mistake == "not rounded":
            return (x0 + mag * z).clamp(0, 1)
        if mistake == "x_0 rounded too":
            return torch.round(x0 + mag * z).clamp(0, 1)
        x_t = x0 + torch.round(mag * z)
        return x_t if mistake == "not clipped" else x_t.clamp(0, 1)
    return piece


def rung(x0, x_T, i, steps2use):
    return x0 + (i / steps2use) * (x_T - x0)


def rung_with(mistake):
    fraction = {"integer division": lambda i, T: i // T, "i / (T + 1)": lambda i, T: i / (T + 1),
                "(i + 1) / T": lambda i, T: (i + 1) / T}.get(mistake, lambda i, T: i / T)

    def piece(x0, x_T, i, steps2use):
        if mistake == "backwards":
            return x_T + i / steps2use * (x0 - x_T)
        if mistake == "fresh noise":
            return x0 + i / steps2use * (x_T - x0) + 0.01 * torch.randn(x0.shape)
        return x0 + fraction(i, steps2use) * (x_T - x0)
    return piece


def training_pairs(x0, x_T, steps2use):
    rungs = [rung(x0, x_T, i, steps2use) for i in range(steps2use + 1)]
    inputs = torch.cat([x0] + rungs[1:])        # x_0, then x_1 … x_T
    targets = torch.cat([x0] + rungs[:-1])      # x_0, then x_0 … x_{T−1}
    return inputs, targets


def pairs_with(mistake):
    def piece(x0, x_T, steps2use):
        rungs = [rung(x0, x_T, i, steps2use) for i in range(steps2use + 1)]
        steps = range(1, steps2use) if mistake == "top pair missing" else range(1, steps2use + 1)
        inputs = [rungs[i] for i in steps]
        targets = [rungs[0] if mistake == "clean targets" else rungs[i - 1] for i in steps]
        if mistake != "x_0 → x_0 missing":
            inputs, targets = [x0] + inputs, [x0] + targets
        if mistake == "swapped":
            inputs, targets = targets, inputs
        inputs, targets = torch.cat(inputs), torch.cat(targets)
        if mistake == "digits mixed":
            targets = targets.flip(0)
        return inputs, targets
    return piece


def test_the_checks_accept_the_solution_and_the_labs_end_point():
    check_end_point(end_point)
    check_end_point(lambda x0, mag, dist, g: rounded_endpoint(x0, mag, dist, g))
    check_rung(rung)
    check_rung(lambda x0, x_T, i, T: torch.lerp(x0, x_T, i / T))   # another way to write the same line
    check_training_pairs(training_pairs)


def test_the_checks_accept_the_labs_own_ladder():
    check_rung(lambda x0, x_T, i, T: interpolation_ladder(x0, x_T, T)[i])
    check_training_pairs(lambda x0, x_T, T: pairs_from_rungs(interpolation_ladder(x0, x_T, T)))


def _says(check, piece):
    with pytest.raises(CheckFailed) as info:
        check(piece)
    assert "\n" not in str(info.value)
    return str(info.value)


END_POINT = {
    "generator ignored": "the generator is ignored",
    "one generator for all": "the same noise for two different generators",
    "not clipped": "x_T leaves [0, 1]",
    "not rounded": "the noise is not rounded",
    "x_0 rounded too": "round only the noise, x_0 + round(mag2use · z)",
    "mag ignored": "mag2use = 2 gave the end point of mag2use = 1",
    "dist ignored": "dist2try = 'uniform' gave the noise of 'norm'",
    "U(0, 1)": "torch.rand draws U(0, 1); U(−1, 1) is 2·torch.rand(...) − 1",
}
RUNG = {
    "backwards": "the ladder runs backwards",
    "integer division": "i // steps2use is whole-number division",
    "i / (T + 1)": "not i / (steps2use + 1)",
    "(i + 1) / T": "an off-by-one: the fraction is i / steps2use",
    "fresh noise": "with no new noise",
}
PAIRS = {
    "swapped": "the pairs are swapped",
    "clean targets": "every target is the clean x_0",
    "x_0 → x_0 missing": "the pair x_0 → x_0 is missing",
    "top pair missing": "the top pair x_T → x_{T−1} is missing",
    "digits mixed": "a pair mixes two digits",
}


@pytest.mark.parametrize("mistake", END_POINT)
def test_the_end_point_check_names_each_mistake(mistake):
    assert END_POINT[mistake] in _says(check_end_point, end_point_with(mistake))


@pytest.mark.parametrize("mistake", RUNG)
def test_the_rung_check_names_each_mistake(mistake):
    assert RUNG[mistake] in _says(check_rung, rung_with(mistake))


@pytest.mark.parametrize("mistake", PAIRS)
def test_the_pairs_check_names_each_mistake(mistake):
    assert PAIRS[mistake] in _says(check_training_pairs, pairs_with(mistake))
