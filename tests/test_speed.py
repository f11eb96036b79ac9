"""One set of speed switches for the trainer and the samplers, resolved once per device and job."""

import pytest
import torch

from connlab.errors import UserError
from connlab.runtime.speed import ResolvedSpeed, Speed
from connlab.train import TrainConfig


def test_trainer_and_sampler_share_one_speed_object():
    assert TrainConfig(compile="off", malloc_cache="on").speed == Speed(compile="off", malloc_cache="on")


def test_auto_on_cpu_for_training_and_for_sampling():
    cpu = torch.device("cpu")
    assert Speed().resolve(cpu, "train") == ResolvedSpeed(bf16=False, compile=False, channels_last=True,
                                                          cuda_graph=False, malloc_cache=True)
    assert Speed().resolve(cpu, "sample") == ResolvedSpeed(bf16=False, compile=False, channels_last=True,
                                                           cuda_graph=False, malloc_cache=False)


def test_auto_on_cuda_is_bf16_and_graphs_but_does_not_compile():
    # Resolving needs no GPU: it only reads the device type. Compile is off by auto since the H200 rows in
    # benchmarks/RESULTS.md (compile + capture cost more than a 20-epoch run saves).
    cuda = torch.device("cuda")
    for purpose in ("train", "sample"):
        assert Speed().resolve(cuda, purpose) == ResolvedSpeed(bf16=True, compile=False, channels_last=True,
                                                               cuda_graph=True, malloc_cache=False)
    assert not Speed().resolve(cuda, "train", distributed=True).cuda_graph
    assert Speed(compile="on").resolve(cuda, "train").compile


def test_explicit_switches_win_over_auto():
    fast = Speed(precision="bf16", compile="on", channels_last="off", malloc_cache="off").resolve("cpu", "train")
    assert fast.bf16 and fast.compile and not fast.channels_last and not fast.malloc_cache


def test_impossible_or_misspelt_settings_are_user_errors():
    with pytest.raises(UserError, match="--cuda-graph on needs a CUDA device, not cpu"):
        Speed(cuda_graph="on").resolve("cpu", "sample")
    with pytest.raises(UserError, match="--malloc-cache 'yes' is not one of auto, on, off"):
        Speed(malloc_cache="yes")
    with pytest.raises(UserError, match="--precision 'fp16'"):
        TrainConfig(precision="fp16")
