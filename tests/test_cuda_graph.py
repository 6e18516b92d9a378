"""backend.cuda_graph: the cache's bookkeeping on the CPU (a stand-in capture), real graphs on CUDA (gpu marker)."""

from __future__ import annotations

import logging

import pytest
import torch

from backend.cuda_graph import CudaGraph, GraphCache


class _FakeGraph:
    """Stands in for CudaGraph: records the shape it captured, replays by calling fn (tagged, see __call__)."""

    captured: list[tuple] = []

    def __init__(self, fn, inputs):
        self.fn = fn
        _FakeGraph.captured.append(tuple(inputs[0].shape))

    def __call__(self, *inputs):
        return self.fn(*inputs) + 1000  # a replay is told apart from an eager call by the offset


class _AnyDeviceCache(GraphCache):
    """GraphCache that treats CPU tensors as graphable, so its bookkeeping runs here."""

    def wants_graph(self, inputs):
        return True


@pytest.fixture(autouse=True)
def _fresh_captures():
    _FakeGraph.captured = []


def test_cpu_inputs_run_eagerly_and_capture_nothing():
    cache = GraphCache(lambda x: x * 2, capture=_FakeGraph)
    assert torch.equal(cache(torch.ones(3)), torch.full((3,), 2.0))
    assert _FakeGraph.captured == [] and not cache.graphs


def test_one_capture_per_input_signature_then_replays():
    cache = _AnyDeviceCache(lambda x: x * 2, capture=_FakeGraph)
    first = cache(torch.ones(2, 3))
    again = cache(torch.full((2, 3), 5.0))
    other = cache(torch.ones(4, 3))
    other_dtype = cache(torch.ones(4, 3, dtype=torch.float64))
    assert _FakeGraph.captured == [(2, 3), (4, 3), (4, 3)]  # dtype is part of the signature
    assert torch.equal(first, torch.full((2, 3), 1002.0)) and torch.equal(again, torch.full((2, 3), 1010.0))
    assert other.shape == (4, 3) and other_dtype.dtype == torch.float64


def test_least_recently_used_graph_is_dropped_beyond_max_graphs():
    cache = _AnyDeviceCache(lambda x: x, max_graphs=2, capture=_FakeGraph)
    for size in (1, 2, 1, 3):  # 1 is used again after 2, so 2 is the one dropped when 3 arrives
        cache(torch.zeros(size))
    assert [key[0][0] for key in cache.graphs] == [(1,), (3,)]
    cache(torch.zeros(2))
    assert _FakeGraph.captured == [(1,), (2,), (3,), (2,)]


def test_failed_capture_falls_back_to_eager_once_and_for_all(caplog):
    attempts = []

    def failing_capture(fn, inputs):
        attempts.append(1)
        raise RuntimeError("operation not permitted when stream is capturing")

    cache = _AnyDeviceCache(lambda x: x + 1, capture=failing_capture)
    with caplog.at_level(logging.WARNING, logger="backend.cuda_graph"):
        results = [cache(torch.zeros(2)) for _ in range(3)]
    assert all(torch.equal(r, torch.ones(2)) for r in results)  # eager results, correct
    assert len(attempts) == 1 and len(cache.eager_signatures) == 1
    assert "running eagerly" in caplog.text and "not permitted" in caplog.text


def test_out_of_memory_during_capture_is_raised_not_hidden():
    def oom_capture(fn, inputs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    cache = _AnyDeviceCache(lambda x: x, capture=oom_capture)
    with pytest.raises(torch.cuda.OutOfMemoryError):
        cache(torch.zeros(2))


@pytest.mark.gpu
def test_cuda_graph_replays_fresh_inputs_into_fresh_outputs():
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    weight = torch.randn(16, 16, device="cuda")

    def layer(x, bias):
        return torch.relu(x @ weight + bias), x.sum(1)

    x1, b1 = torch.randn(4, 16, device="cuda"), torch.randn(16, device="cuda")
    graph = CudaGraph(layer, (x1, b1))
    out1 = graph(x1, b1)
    x2, b2 = torch.randn(4, 16, device="cuda"), torch.randn(16, device="cuda")
    with torch.inference_mode():  # inference-mode callers feed it too
        out2 = graph(x2, b2)
    for got, expected in zip(out1, layer(x1, b1), strict=True):  # out1 was cloned: the second replay left it alone
        torch.testing.assert_close(got, expected)
    for got, expected in zip(out2, layer(x2, b2), strict=True):
        torch.testing.assert_close(got, expected)
    with pytest.raises(ValueError, match="do not match"):
        graph(torch.randn(5, 16, device="cuda"), b1)
    cache = GraphCache(layer)
    torch.testing.assert_close(cache(x2, b2)[0], layer(x2, b2)[0])
    assert len(cache.graphs) == 1 and not cache.eager_signatures
