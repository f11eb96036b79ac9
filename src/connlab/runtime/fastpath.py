"""CUDA graphs: replay a whole piece of GPU work with one launch.

The lab's networks are small, so on a GPU most of a training step is overhead: Python,
and hundreds of kernel launches of a few microseconds each. A CUDA graph records every
kernel of one step once and replays them all with a single launch. Two rules make that
correct:

- **Static memory.** A replay reads and writes exactly the addresses it recorded. Inputs
  are therefore *copied into* tensors that live as long as the graph (the epoch's
  permutation, the position in it), and outputs are read from tensors it owns.
- **No host in the loop.** Anything the CPU decides during capture (a Python ``if`` on a
  tensor, ``.item()``, a fresh ``torch.tensor`` copied from the host) is frozen or is an
  error. The training step gathers its batch on the device from ``perm[pos*B + arange(B)]``
  and advances ``pos`` itself; random numbers come from a generator registered with the
  graph, whose offset advances at every replay just as it would eagerly.

``GraphedStep`` captures a training step; ``GraphedCall`` captures any function of fixed
input shapes (the DDIM sampling loop). Both exist only on CUDA; on other devices the
callers run the same code eagerly.
"""

from __future__ import annotations

from typing import Callable

import torch

WARMUP_STEPS = 3  # eager steps on a side stream before capture: cuDNN/cuBLAS/compile warm-up


class GraphCaptureFailed(RuntimeError):
    """The work could not be recorded as a CUDA graph (it synchronises with the host)."""


class GraphedStep:
    """One full-batch training step — gather, noise, forward, backward, optimizer — as a CUDA graph.

    ``step(batch)`` must do the whole step for a batch (a tuple of rows of ``data``) with
    gradients already cleared; ``data`` are the device-resident training tensors.
    Usage per epoch: ``start_epoch(perm, first)``, then ``run(i)`` for each full batch i.
    The first ``WARMUP_STEPS`` calls run eagerly on a side stream (real training steps);
    the next one captures the graph and replays it, and every later one only replays.
    """

    def __init__(self, step: Callable[[tuple[torch.Tensor, ...]], None], data: tuple[torch.Tensor, ...],
                 batch_size: int, generator: torch.Generator, zero_grad: Callable[[], None]):
        device = data[0].device
        self.step, self.data, self.batch_size = step, data, batch_size
        self.generator, self.zero_grad = generator, zero_grad
        self.perm = torch.zeros(len(data[0]), dtype=torch.long, device=device)
        self.pos = torch.zeros((), dtype=torch.long, device=device)
        self.offsets = torch.arange(batch_size, device=device)
        self.graph: torch.cuda.CUDAGraph | None = None
        self.warmups = 0
        self.side = torch.cuda.Stream(device)

    def start_epoch(self, perm: torch.Tensor, first: int) -> None:
        self.perm.copy_(perm)
        self.pos.fill_(first)

    def _batch(self) -> tuple[torch.Tensor, ...]:
        idx = self.perm[self.pos * self.batch_size + self.offsets]
        return tuple(t[idx] for t in self.data)

    def run(self, i: int) -> None:
        if self.graph is not None:
            self.graph.replay()
            return
        if self.warmups < WARMUP_STEPS:
            self.side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(self.side):
                self.pos.fill_(i)
                self.zero_grad(set_to_none=True)
                self.step(self._batch())
            torch.cuda.current_stream().wait_stream(self.side)
            self.warmups += 1
            return
        torch.cuda.synchronize()
        graph = torch.cuda.CUDAGraph()
        graph.register_generator_state(self.generator)
        self.zero_grad(set_to_none=True)  # gradients are then allocated in the graph's own pool
        self.pos.fill_(i)
        torch.cuda.synchronize()
        try:
            with torch.cuda.graph(graph):
                self.step(self._batch())
                self.pos += 1
        except RuntimeError as err:  # a step that is not capturable (e.g. a loss that reads .item())
            raise GraphCaptureFailed(f"the training step could not be captured as a CUDA graph ({err}); "
                                     f"run with --cuda-graph off") from None
        self.pos.fill_(i)  # capture recorded but did not run the step: run it now
        self.graph = graph
        graph.replay()

    @property
    def captured(self) -> bool:
        return self.graph is not None


class GraphedCall:
    """``fn(*inputs)`` recorded once as a CUDA graph for fixed input shapes, then replayed.

    The first call runs ``fn`` eagerly (warm-up: compilation, library handles), the second
    captures it; later calls copy their inputs into the static ones and replay. The result
    is a fresh tensor (a clone of the graph's output), so callers may keep it.
    """

    def __init__(self, fn: Callable[..., torch.Tensor], generator: torch.Generator | None = None):
        self.fn, self.generator = fn, generator
        self.graph: torch.cuda.CUDAGraph | None = None
        self.inputs: tuple[torch.Tensor, ...] = ()
        self.output: torch.Tensor | None = None
        self.calls = 0
        self.key = None

    def __call__(self, *inputs: torch.Tensor) -> torch.Tensor:
        key = tuple((tuple(x.shape), x.dtype, x.device) for x in inputs)
        if self.graph is not None and key == self.key:
            for static, x in zip(self.inputs, inputs):
                static.copy_(x)
            self.graph.replay()
            return self.output.clone()
        if self.calls == 0 or key != self.key:
            self.calls, self.key, self.graph = 1, key, None
            side = torch.cuda.Stream(inputs[0].device)
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                out = self.fn(*inputs)
            torch.cuda.current_stream().wait_stream(side)
            return out
        self.inputs = tuple(x.clone() for x in inputs)
        graph = torch.cuda.CUDAGraph()
        if self.generator is not None:
            graph.register_generator_state(self.generator)
        torch.cuda.synchronize()
        try:
            with torch.cuda.graph(graph):
                self.output = self.fn(*self.inputs)
        except RuntimeError as err:
            raise GraphCaptureFailed(f"could not capture {getattr(self.fn, '__name__', 'the call')} "
                                     f"as a CUDA graph ({err}); run with --cuda-graph off") from None
        self.graph = graph
        graph.replay()
        return self.output.clone()
