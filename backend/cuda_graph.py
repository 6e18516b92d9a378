"""Replaying a model call from a CUDA graph: one capture per input signature, eager wherever graphs can't serve.

Small networks (CLIPSeg, Zero123's UNet at 32² latents) are launch-bound: the GPU waits for Python and for
kernel launches, not for arithmetic. A CUDA graph records every kernel of one call once and replays them with a
single launch. The price is fixed shapes and fixed addresses: inputs are copied into buffers made at capture
time, and outputs live in the graph's own memory, so they are cloned before the next replay overwrites them.

Usage::

    unet_eps = GraphCache(lambda x, t, c: unet(x, t, encoder_hidden_states=c).sample)
    eps = unet_eps(sample, timesteps, context)  # captured on the first call of each shape, replayed after
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence

import torch

logger = logging.getLogger(__name__)

Outputs = torch.Tensor | tuple[torch.Tensor, ...]


def input_signature(inputs: Sequence[torch.Tensor]) -> tuple:
    """What a captured graph is tied to: each input's shape, dtype and device."""
    return tuple((tuple(t.shape), t.dtype, str(t.device)) for t in inputs)


class CudaGraph:
    """``fn`` captured once for inputs like ``example_inputs``; a call copies its inputs in, replays, clones out.

    fn: takes tensors positionally and returns a tensor or a tuple of tensors. Whatever else it reads (weights)
        must stay where it is in memory while the graph lives: the graph holds addresses, not tensors.
    Buffers are made and the capture runs outside inference mode (with no_grad), so callers in inference mode
    and callers under no_grad can both feed them, and what comes back is an ordinary tensor.
    """

    def __init__(self, fn: Callable[..., Outputs], example_inputs: Sequence[torch.Tensor], warmup_runs: int = 2):
        device = example_inputs[0].device
        self.signature = input_signature(example_inputs)
        with torch.inference_mode(False), torch.no_grad():
            self.inputs = tuple(t.clone() for t in example_inputs)
            side = torch.cuda.Stream(device)
            side.wait_stream(torch.cuda.current_stream(device))
            with torch.cuda.stream(side):
                for _ in range(warmup_runs):  # outside the capture: cuDNN/cuBLAS choose algorithms, lazy inits run
                    fn(*self.inputs)
            torch.cuda.current_stream(device).wait_stream(side)
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph):
                self.outputs = fn(*self.inputs)

    def __call__(self, *inputs: torch.Tensor) -> Outputs:
        if input_signature(inputs) != self.signature:  # copy_ would broadcast silently
            raise ValueError(f"inputs {input_signature(inputs)} do not match the captured {self.signature}")
        with torch.inference_mode(False), torch.no_grad():
            for buffer, value in zip(self.inputs, inputs, strict=True):
                buffer.copy_(value)
            self.graph.replay()
            if isinstance(self.outputs, torch.Tensor):
                return self.outputs.clone()
            return tuple(out.clone() for out in self.outputs)


class GraphCache:
    """``fn`` replayed from one :class:`CudaGraph` per input signature; eager where no graph can serve.

    - Inputs not all on CUDA (the CPU path): ``fn`` is called as it is, nothing is captured.
    - At most ``max_graphs`` graphs are kept, the least recently used dropped first (each holds its own memory).
    - A signature whose capture failed (an op that syncs with the host, say) is warned about once and then run
      eagerly; running out of GPU memory is raised, never hidden.
    - One lock around capture and replay: the Blender job thread and a CLI call never share the buffers.
    """

    def __init__(self, fn: Callable[..., Outputs], max_graphs: int = 8,
                 capture: Callable[[Callable[..., Outputs], Sequence[torch.Tensor]], Callable[..., Outputs]] = CudaGraph):
        if max_graphs < 1:
            raise ValueError(f"max_graphs must be at least 1, got {max_graphs}")
        self.fn = fn
        self.max_graphs = max_graphs
        self.capture = capture
        self.graphs: OrderedDict[tuple, Callable[..., Outputs]] = OrderedDict()
        self.eager_signatures: set[tuple] = set()
        self._lock = threading.Lock()

    def wants_graph(self, inputs: Sequence[torch.Tensor]) -> bool:
        return bool(inputs) and all(isinstance(t, torch.Tensor) and t.is_cuda for t in inputs)

    def __call__(self, *inputs: torch.Tensor) -> Outputs:
        if not self.wants_graph(inputs):
            return self.fn(*inputs)
        key = input_signature(inputs)
        with self._lock:
            graph = None if key in self.eager_signatures else self._graph_for(key, inputs)
            if graph is not None:
                return graph(*inputs)
        return self.fn(*inputs)

    def _graph_for(self, key: tuple, inputs: Sequence[torch.Tensor]) -> Callable[..., Outputs] | None:
        graph = self.graphs.get(key)
        if graph is not None:
            self.graphs.move_to_end(key)
            return graph
        try:
            graph = self.capture(self.fn, inputs)
        except torch.cuda.OutOfMemoryError:
            raise
        except Exception as exc:  # noqa: BLE001 - any failed capture leaves the eager call, which is correct
            logger.warning("CUDA graph capture failed for inputs %s (%s: %s); running eagerly instead",
                           key, type(exc).__name__, exc)
            self.eager_signatures.add(key)
            return None
        self.graphs[key] = graph
        while len(self.graphs) > self.max_graphs:
            self.graphs.popitem(last=False)
        return graph
