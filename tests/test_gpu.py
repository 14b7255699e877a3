"""CUDA: the native path is cuDNN's, the reference path runs on the GPU, both agree."""

from __future__ import annotations

import pytest
import torch
from conftest import leaves, run_and_grad, twins

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
]


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_cuda_reference_matches_cudnn(kind, bidirectional):
    torch.manual_seed(0)
    ref, ours = twins(
        kind, 6, 16, num_layers=2, bidirectional=bidirectional, dtype=torch.float64, device="cuda"
    )
    x = torch.randn(9, 4, 6, dtype=torch.float64, device="cuda", requires_grad=True)
    w = [torch.randn_like(t) for t in leaves(ref(x))]
    a = run_and_grad(ref, x, None, w)
    b = run_and_grad(ours, x, None, w)
    for p, q in zip(a[0] + list(a[1]), b[0] + list(b[1])):
        torch.testing.assert_close(q, p, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("backend", ["reference", "native"])
def test_cuda_lengths_from_cpu_or_gpu(backend):
    _, ours = twins("LSTM", 6, 16, device="cuda", backend=backend)
    x = torch.randn(9, 3, 6, device="cuda")
    a = ours(x, lengths=torch.tensor([9, 3, 5]))[0]
    b = ours(x, lengths=torch.tensor([9, 3, 5], device="cuda"))[0]
    torch.testing.assert_close(a, b)
    assert not a[5:, 2].any()
