"""rnnkit.RNN / LSTM / GRU against torch.nn: outputs, final states and every gradient.

Every flag combination, on both paths, for padded (batch_first or not), unbatched, packed sorted
and packed unsorted input, with and without an initial state, in float32 and float64.
"""

from __future__ import annotations

import itertools
import random
import zlib

import pytest
import torch
from conftest import assert_all_close, leaves, run_and_grad, twins
from torch.nn.utils.rnn import pack_padded_sequence

KINDS = [
    ("RNN", {}),
    ("RNN", {"nonlinearity": "relu"}),
    ("LSTM", {}),
    ("LSTM", {"proj_size": 3}),
    ("GRU", {}),
]
FORMS = ["padded", "unbatched", "packed_sorted", "packed_unsorted"]


def make_input(form, batch_first, steps, batch, size, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    if form == "unbatched":
        return torch.randn(steps, size, generator=g, dtype=dtype).requires_grad_()
    x = torch.randn(steps, batch, size, generator=g, dtype=dtype)
    if batch_first:
        x = x.transpose(0, 1).contiguous()
    x.requires_grad_()
    if form == "padded":
        return x
    lengths = torch.randint(1, steps + 1, (batch,), generator=g)
    lengths[0] = steps
    if form == "packed_sorted":
        lengths = lengths.sort(descending=True).values
    sorted_ = form == "packed_sorted"
    return pack_padded_sequence(x, lengths, batch_first=batch_first, enforce_sorted=sorted_)


def make_state(ref, batched, batch, dtype, seed):
    g = torch.Generator().manual_seed(seed + 1)
    D = 2 if ref.bidirectional else 1
    shape = (ref.num_layers * D, batch) if batched else (ref.num_layers * D,)
    h_size = ref.proj_size if getattr(ref, "proj_size", 0) else ref.hidden_size
    h = torch.randn(*shape, h_size, generator=g, dtype=dtype).requires_grad_()
    if isinstance(ref, torch.nn.LSTM):
        return h, torch.randn(*shape, ref.hidden_size, generator=g, dtype=dtype).requires_grad_()
    return h


CASES = list(
    itertools.product(
        range(len(KINDS)),
        [True, False],
        [False, True],
        [False, True],
        [1, 2],
        FORMS,
        [False, True],
    )
)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("backend", ["reference", "native"])
@pytest.mark.parametrize(
    "kind_i,bias,batch_first,bidirectional,num_layers,form,with_h0",
    CASES,
    ids=[
        f"{KINDS[c[0]][0]}{'-' + '-'.join(f'{k}={v}' for k, v in KINDS[c[0]][1].items()) if KINDS[c[0]][1] else ''}"  # noqa: E501
        f"-bias{int(c[1])}-bf{int(c[2])}-bi{int(c[3])}-L{c[4]}-{c[5]}-h0{int(c[6])}"
        for c in CASES
    ],
)
def test_matches_torch(
    kind_i, bias, batch_first, bidirectional, num_layers, form, with_h0, backend, dtype
):
    kind, extra = KINDS[kind_i]
    seed = zlib.crc32(
        repr((kind_i, bias, batch_first, bidirectional, num_layers, form, with_h0)).encode()
    )
    rnd = random.Random(seed)
    steps, batch = rnd.randint(1, 6), rnd.randint(1, 4)
    size, hidden = rnd.randint(1, 5), rnd.randint(4, 7)
    torch.manual_seed(seed)
    ref, ours = twins(
        kind,
        size,
        hidden,
        num_layers=num_layers,
        bias=bias,
        batch_first=batch_first,
        bidirectional=bidirectional,
        dtype=dtype,
        backend=backend,
        **extra,
    )
    x = make_input(form, batch_first, steps, batch, size, dtype, seed)
    hx = make_state(ref, form != "unbatched", batch, dtype, seed) if with_h0 else None
    ref_out = ref(x, hx) if hx is not None else ref(x)
    weights = [torch.randn_like(t) for t in leaves(ref_out)]
    a = run_and_grad(ref, x, hx, weights)
    b = run_and_grad(ours, x, hx, weights)
    assert_all_close(a[0], b[0], dtype)
    assert_all_close(a[1], b[1], dtype)
    out_ref, out_ours = ref(x, hx), ours(x, hx)
    assert type(out_ours[0]) is type(out_ref[0])
    if form.startswith("packed"):
        for f in ("batch_sizes", "sorted_indices", "unsorted_indices"):
            r, o = getattr(out_ref[0], f), getattr(out_ours[0], f)
            assert (r is None and o is None) or torch.equal(r, o)


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
def test_random_shapes_reference_vs_native(kind):
    """Both paths give the same numbers on larger random shapes (float64, tight)."""
    rnd = random.Random(7)
    for _ in range(5):
        steps, batch, size, hidden = (
            rnd.randint(1, 30),
            rnd.randint(1, 9),
            rnd.randint(1, 20),
            rnd.randint(1, 24),
        )
        layers, bi = rnd.randint(1, 3), rnd.random() < 0.5
        ref, ours = twins(
            kind, size, hidden, num_layers=layers, bidirectional=bi, dtype=torch.float64
        )
        native = type(ours)(
            size, hidden, num_layers=layers, bidirectional=bi, dtype=torch.float64, backend="native"
        )
        native.load_state_dict(ref.state_dict())
        x = torch.randn(steps, batch, size, dtype=torch.float64, requires_grad=True)
        weights = [torch.randn_like(t) for t in leaves(ref(x))]
        a = run_and_grad(native, x, None, weights)
        b = run_and_grad(ours, x, None, weights)
        assert_all_close(a[0], b[0], torch.float64)
        assert_all_close(a[1], b[1], torch.float64)
