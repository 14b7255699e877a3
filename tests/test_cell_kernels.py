"""The compiled layer-norm LSTM/GRU kernels against the PyTorch loops and the readable cells.

Three computations of the same function must agree: the C++ time loop
(``rnnkit/cells/kernels/layer_norm_rnn.cpp``), the pure-PyTorch loop it replaces (the fallback,
``RNNKIT_KERNELS=0``), and ``T`` calls of the cell's ``forward``. The first test to ask for the
kernels builds them (once per machine, cached after); where they cannot be built the
kernel-specific tests skip and the fallback tests still run.
"""

from __future__ import annotations

import pytest
import torch
from conftest import step_loop, use

from rnnkit import Recurrent
from rnnkit.cells import kernels as native
from rnnkit.cells.kernels import dense
from rnnkit.cells.layer_norm_gru import LayerNormGRUCell
from rnnkit.cells.layer_norm_lstm import LayerNormLSTMCell
from rnnkit.layers import make_layer
from rnnkit.state import leaves

LN_CELLS = [LayerNormLSTMCell, LayerNormGRUCell]


def make_cell(cls, D, H, dtype, seed):
    torch.manual_seed(seed)
    cell = cls(D, H).to(dtype)
    with torch.no_grad():  # gains of 1 and shifts of 0 would hide mistakes
        for p in cell.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return cell


def random_state(cell, B, dtype):
    zero = cell.initial_state(B, dtype=dtype)
    if isinstance(zero, tuple):
        return tuple(torch.randn_like(s).requires_grad_() for s in zero)
    return torch.randn_like(zero).requires_grad_()


def run(cell, x, state, how):
    """Outputs, final state leaves and every gradient (input, state, parameters)."""
    ys, final = step_loop(cell, x, state) if how == "loop" else cell.sequence(x, state)
    torch.manual_seed(99)
    w = torch.randn_like(ys)
    loss = (w * ys).sum() + sum((w[0] * f).sum() for f in leaves(final))
    grads = torch.autograd.grad(loss, [x, *leaves(state), *cell.parameters()])
    return ys, leaves(final), grads


def names(cell, state):
    return (
        ["x"]
        + [f"state{i}" for i in range(len(leaves(state)))]
        + [n for n, _ in cell.named_parameters()]
    )


TOL = {torch.float64: dict(rtol=1e-10, atol=1e-12), torch.float32: dict(rtol=1e-4, atol=1e-5)}


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("T,B,D,H", [(1, 1, 3, 4), (2, 1, 3, 4), (2, 3, 5, 6), (9, 4, 5, 8)])
@pytest.mark.parametrize("cls", LN_CELLS)
def test_kernel_equals_fallback_and_step_loop(cls, T, B, D, H, dtype, built, monkeypatch):
    cell = make_cell(cls, D, H, dtype, seed=T * 100 + B)
    x = torch.randn(T, B, D, dtype=dtype, requires_grad=True)
    state = random_state(cell, B, dtype)
    spy = use(monkeypatch, "kernel", built)
    fast = run(cell, x, state, "sequence")
    assert spy.calls == [f"{'lstm' if cls is LayerNormLSTMCell else 'gru'}_{s}"
                         for s in ("forward", "backward")]  # fmt: skip
    use(monkeypatch, "fallback")
    fallback = run(cell, x, state, "sequence")
    loop = run(cell, x, state, "loop")
    for ref in (fallback, loop):
        torch.testing.assert_close(fast[0], ref[0], **TOL[dtype])
        for f, f_ref in zip(fast[1], ref[1]):
            torch.testing.assert_close(f, f_ref, **TOL[dtype])
        for name, g, g_ref in zip(names(cell, state), fast[2], ref[2]):
            torch.testing.assert_close(g, g_ref, **TOL[dtype], msg=name)


@pytest.mark.parametrize("B", [16, 19])
@pytest.mark.parametrize("cls", LN_CELLS)
def test_kernel_row_blocks_on_two_threads(cls, B, built, two_threads, monkeypatch):
    # From 16 rows on, two threads each run the whole time loop for their own block of rows
    # (row_blocks in the .cpp; 19: blocks of 9 and 10); forward and backward must not notice.
    cell = make_cell(cls, 5, 6, torch.float64, seed=B)
    x = torch.randn(6, B, 5, dtype=torch.float64, requires_grad=True)
    state = random_state(cell, B, torch.float64)
    spy = use(monkeypatch, "kernel", built)
    fast = run(cell, x, state, "sequence")
    assert any(c.endswith("backward") for c in spy.calls)
    with torch.no_grad():
        ys_nograd, _ = cell.sequence(x, state)
    use(monkeypatch, "fallback")
    ref = run(cell, x, state, "sequence")
    torch.testing.assert_close(fast[0], ref[0], **TOL[torch.float64])
    torch.testing.assert_close(ys_nograd, ref[0], **TOL[torch.float64])
    for f, f_ref in zip(fast[1], ref[1]):
        torch.testing.assert_close(f, f_ref, **TOL[torch.float64])
    for name, g, g_ref in zip(names(cell, state), fast[2], ref[2]):
        torch.testing.assert_close(g, g_ref, **TOL[torch.float64], msg=name)


def test_dense_linear_is_f_linear_to_rounding():
    torch.manual_seed(0)
    x, w, b = torch.randn(7, 5, 33), torch.randn(40, 33), torch.randn(40)
    with torch.no_grad():
        y = dense.linear(x, w, b)
        torch.testing.assert_close(y, torch.nn.functional.linear(x, w, b))
        torch.testing.assert_close(dense.linear(x, w), torch.nn.functional.linear(x, w))
    # with gradients: oneDNN forward and input gradient, ATen's weight and bias gradients
    g = torch.randn(7, 5, 40)
    grads = []
    for fn in (dense.linear, torch.nn.functional.linear):
        leaves = [t.clone().requires_grad_() for t in (x, w, b)]
        (fn(*leaves) * g).sum().backward()
        grads.append([t.grad for t in leaves])
    for a, b_ in zip(*grads):
        torch.testing.assert_close(a, b_)
    wp = w.clone().requires_grad_()  # only the weight wants a gradient
    (dense.linear(x, wp) * g).sum().backward()
    torch.testing.assert_close(wp.grad, g.reshape(-1, 40).t() @ x.reshape(-1, 33))
    x64 = x.double()  # other dtypes: F.linear, exactly
    assert torch.equal(dense.linear(x64, w.double()), torch.nn.functional.linear(x64, w.double()))


@pytest.mark.parametrize("cls", LN_CELLS)
def test_kernel_gradcheck(cls, built, monkeypatch):
    cell = make_cell(cls, 3, 4, torch.float64, seed=1)
    x = torch.randn(4, 2, 3, dtype=torch.float64, requires_grad=True)
    state = random_state(cell, 2, torch.float64)
    n = len(leaves(state))
    keys = [k for k, _ in cell.named_parameters()]
    spy = use(monkeypatch, "kernel", built)

    def f(x, *tensors):
        s = tensors[:n] if isinstance(state, tuple) else tensors[0]
        with torch.nn.utils.stateless._reparametrize_module(cell, dict(zip(keys, tensors[n:]))):
            ys, final = cell.sequence(x, s)
        return ys, *leaves(final)

    assert torch.autograd.gradcheck(f, (x, *leaves(state), *cell.parameters()))
    assert any(c.endswith("backward") for c in spy.calls)


@pytest.mark.parametrize("B", [3, 19])
@pytest.mark.parametrize(
    "cls, input_in_loop",
    [(LayerNormLSTMCell, False), (LayerNormLSTMCell, True), (LayerNormGRUCell, False)],
)
def test_kernel_forward_only_by_chunks(cls, input_in_loop, B, built, monkeypatch, two_threads):
    # chunks of 2 steps, so that the state is handed across chunk boundaries (odd T: a last
    # chunk of one step); or, for the LSTM where the panel kernel runs, one call that makes
    # W_ih x_t at every step (x batch-first underneath: its rows are strided). B 19 on two
    # threads: two blocks of rows, each with its own rows of x.
    monkeypatch.setattr(dense, "chunk_steps", lambda row: 2)
    if not input_in_loop:
        monkeypatch.setattr(dense, "panels", lambda weight: None)  # also oneDNN's layout
    elif dense.panels(torch.zeros(16, 4)) is None:
        pytest.skip("the input side is made in the loop with the panel kernel (AVX-512)")
    cell = make_cell(cls, 4, 5, torch.float32, seed=2)
    x = torch.randn(B, 7, 4).transpose(0, 1)
    state = cell.initial_state(B)
    spy = use(monkeypatch, "kernel", built)
    with torch.no_grad():
        ys, final = cell.sequence(x, state)
    assert ys.grad_fn is None and len(spy.calls) == (1 if input_in_loop else 4)
    use(monkeypatch, "fallback")
    with torch.no_grad():
        ys_fb, final_fb = cell.sequence(x, state)
        ys_ref, final_ref = step_loop(cell, x, state)
    for ref, fin in ((ys_fb, final_fb), (ys_ref, final_ref)):  # float32 rounding
        torch.testing.assert_close(ys, ref, rtol=1e-5, atol=5e-6)
        for a, b in zip(leaves(final), leaves(fin)):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=5e-6)


@pytest.mark.parametrize("name", ["lnlstm", "lngru"])
def test_layers_two_layers_bidirectional_kernel_equals_fallback(name, built, monkeypatch):
    torch.manual_seed(4)
    layer = make_layer(name, 5, 6, num_layers=2, bidirectional=True, batch_first=True).double()
    with torch.no_grad():
        for p in layer.parameters():
            p.add_(0.3 * torch.randn_like(p))
    x = torch.randn(3, 7, 5, dtype=torch.float64, requires_grad=True)  # (B, T, I)
    results = []
    for engine in ("kernel", "fallback"):
        spy = use(monkeypatch, engine, built)
        out, h_n = layer(x)
        loss = (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum()
        loss = loss + sum(s.square().sum() for s in leaves(h_n))
        grads = torch.autograd.grad(loss, [x, *layer.parameters()])
        results.append((out, leaves(h_n), grads))
        if spy is not None:
            assert spy.calls.count(f"{name[2:]}_forward") == 4  # 2 layers x 2 directions
    (out, h_n, grads), (out_fb, h_fb, grads_fb) = results
    torch.testing.assert_close(out, out_fb, rtol=1e-10, atol=1e-12)
    for a, b in zip(h_n, h_fb):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    for (pname, _), g, g_fb in zip([("x", 0), *layer.named_parameters()], grads, grads_fb):
        torch.testing.assert_close(g, g_fb, rtol=1e-10, atol=1e-12, msg=pname)


def test_recurrent_runs_the_kernel_for_the_cell_class(built, monkeypatch):
    layer = Recurrent(LayerNormLSTMCell, 3, 4)
    spy = use(monkeypatch, "kernel", built)
    out, _ = layer(torch.randn(5, 2, 3))
    assert out.shape == (5, 2, 4) and spy.calls == ["lstm_forward"]


def test_environment_switch_turns_the_kernels_off(monkeypatch):
    monkeypatch.setenv("RNNKIT_KERNELS", "0")
    assert not native.enabled() and native.load() is None
    assert native.usable(torch.zeros(2)) is None
    monkeypatch.setenv("RNNKIT_KERNELS", "1")
    assert native.enabled()


def test_kernels_refuse_what_they_cannot_run(monkeypatch):
    monkeypatch.setattr(native, "load", lambda: "ops")
    assert native.usable(torch.zeros(2), torch.zeros(3)) == "ops"
    assert native.usable(torch.zeros(2, dtype=torch.float64)) == "ops"
    assert native.usable(torch.zeros(2), torch.zeros(2, dtype=torch.float64)) is None  # mixed
    assert native.usable(torch.zeros(2, dtype=torch.float16)) is None
    assert native.usable(torch.zeros(2), torch.zeros(2, device="meta")) is None
    monkeypatch.setattr(torch.jit, "is_tracing", lambda: True)  # ONNX / TorchScript export
    assert native.usable(torch.zeros(2)) is None


def test_a_failed_build_warns_once_and_falls_back(monkeypatch):
    from torch.utils import cpp_extension

    def broken(**kwargs):
        raise RuntimeError("Ninja is required to load C++ extensions\nmore detail")

    monkeypatch.setattr(cpp_extension, "load", broken)
    with pytest.warns(RuntimeWarning, match="could not build.*Ninja is required.*PyTorch loops"):
        assert native._build.__wrapped__() is None  # the uncached body: a fresh first use


@pytest.mark.parametrize("cls", LN_CELLS)
def test_fallback_alone_equals_the_step_loop(cls, monkeypatch):
    # runs with or without a compiler: the PyTorch loops are the engines' other half
    use(monkeypatch, "fallback")
    cell = make_cell(cls, 3, 5, torch.float64, seed=5)
    x = torch.randn(6, 2, 3, dtype=torch.float64, requires_grad=True)
    state = random_state(cell, 2, torch.float64)
    fast, loop = run(cell, x, state, "sequence"), run(cell, x, state, "loop")
    torch.testing.assert_close(fast[0], loop[0], rtol=1e-10, atol=1e-12)
    for g, g_ref in zip(fast[2], loop[2]):
        torch.testing.assert_close(g, g_ref, rtol=1e-10, atol=1e-12)


def test_packed_step_products_equal_atens(built):
    # float32 loops run their per-step products on W_hh laid out once per call
    # (dense.packed_for_steps): rnnkit's panel kernel with AVX-512, oneDNN's otherwise; ATen's
    # mm without a layout. All three give the same numbers to float rounding.
    torch.manual_seed(3)
    T, B, H = 5, 20, 16
    assert dense.packed_for_steps(torch.randn(4 * H, H, dtype=torch.float64), B) is None
    w_hh = torch.randn(4 * H, H) * 0.3
    chosen = dense.packed_for_steps(w_hh, B)
    assert chosen is not None
    onednn = torch.ops.mkldnn._reorder_linear_weight(w_hh, B // 2)
    onednn_t = torch.ops.mkldnn._reorder_linear_weight(w_hh.t().contiguous(), B // 2)
    panels, panels_t = built.pack_panels(w_hh), built.pack_panels(w_hh.t())
    layouts = [(None, None), (onednn, onednn_t)]
    if panels.dim() == 3:
        assert torch.equal(chosen, panels)  # with AVX-512 the loops take the panels
        layouts.append((panels, panels_t))
    xg, h0, c0 = torch.randn(T, B, 4 * H), torch.randn(B, H), torch.randn(B, H)
    norms = (torch.rand(4 * H) + 0.5, torch.rand(H) + 0.5, torch.randn(H), 1e-5, 1e-5)
    outs = []
    for p, p_t in layouts:
        hs = torch.empty(T, B, H)
        c_T, *saved = built.lstm_forward(
            xg, h0, c0, w_hh, *norms, hs, True, p, None, None, 0.0, None
        )
        grad_hs, grad_c = torch.randn(T, B, H, generator=torch.Generator().manual_seed(1)), c_T
        grads = built.lstm_backward(
            grad_hs, grad_c, h0, c0, w_hh, norms[0], norms[1], *saved, p_t, None, None, None, None
        )
        outs.append((hs, c_T, *grads))
    for other in outs[1:]:
        for a, b in zip(outs[0], other):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def _mapping_flags(address: int) -> list[str] | None:
    """The VmFlags of the mapping of this process that holds ``address`` (Linux), or None."""
    try:
        with open("/proc/self/smaps") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    inside = False
    for line in lines:
        head = line.split()[0]
        if "-" in head and all(c in "0123456789abcdef-" for c in head):
            start, end = (int(v, 16) for v in head.split("-"))
            inside = start <= address < end
        elif inside and line.startswith("VmFlags:"):
            return line.split()[1:]
    return None


def test_empty_huge_asks_for_huge_pages_on_large_buffers(built):
    # the loops' whole-sequence buffers: at::empty plus the hint (madvise) for 2 MB pages
    small = built.empty_huge([3, 5], torch.float64)
    assert small.shape == (3, 5) and small.dtype == torch.float64 and small.is_contiguous()
    big = built.empty_huge([4, 1024, 1024], torch.float32)  # 16 MB
    assert big.shape == (4, 1024, 1024) and big.dtype == torch.float32
    big.fill_(2.0)
    assert float(big.sum()) == 2.0 * big.numel()
    enabled = "/sys/kernel/mm/transparent_hugepage/enabled"
    try:
        with open(enabled) as f:
            mode = f.read()
    except OSError:
        pytest.skip("no transparent huge pages on this system")
    if "[never]" in mode:
        pytest.skip("transparent huge pages are off on this system")
    middle = big.data_ptr() + big.nbytes // 2
    flags = _mapping_flags(middle)
    if flags is None:
        pytest.skip("no /proc/self/smaps")
    assert "hg" in flags  # the middle of the buffer lies in a range advised for huge pages
    plain = torch.empty(4, 1024, 1024)
    plain_flags = _mapping_flags(plain.data_ptr() + plain.nbytes // 2)
    assert plain_flags is not None and "hg" not in plain_flags  # torch's own allocation: not


def test_sequence_buffers_are_reused_only_when_nobody_holds_them(built):
    built.buffer_pool_clear()
    shape = [64, 256, 256]  # 16 MB of float32: pooled
    a = built.sequence_buffer(shape, torch.float32)
    kept = a.data_ptr()
    view = a[3]
    del a
    b = built.sequence_buffer(shape, torch.float32)  # a view of a's memory is still alive
    assert b.data_ptr() != kept
    del view
    c = built.sequence_buffer(shape, torch.float32)  # now nobody holds it: handed out again
    assert c.data_ptr() == kept and c.shape == tuple(shape) and c.is_contiguous()
    d = built.sequence_buffer(shape, torch.float64)  # another dtype: never a float32 buffer
    assert d.data_ptr() not in (kept, b.data_ptr())
    small = built.sequence_buffer([3, 5], torch.float32)  # under 4 MB: an ordinary tensor
    assert small.shape == (3, 5)
    count, size, free = built.buffer_pool_stats()
    assert count == 3 and size == 2 * 16 * 2**20 + 32 * 2**20 and free == 0
    del b, c, d
    assert built.buffer_pool_stats()[2] == 3
    built.buffer_pool_clear()
    assert list(built.buffer_pool_stats()) == [0, 0, 0]


def test_engine_calls_with_reused_buffers_keep_earlier_results(built, monkeypatch):
    # two forward passes alive at once (their saved (T, B, 4H) buffers pooled, 5.2 MB each):
    # the second must not take the first's buffers, and a later call reuses them once both
    # backward passes are done; every gradient equals a lone call's, bit for bit
    built.buffer_pool_clear()
    use(monkeypatch, "kernel", built)
    cell = make_cell(LayerNormLSTMCell, 32, 64, torch.float32, seed=4)
    x = torch.randn(80, 64, 32, requires_grad=True)
    state = random_state(cell, 64, torch.float32)
    alone = run(cell, x, state, "sequence")
    inputs = [x, *leaves(state), *cell.parameters()]
    torch.manual_seed(99)
    w = torch.randn_like(alone[0])
    ys1, final1 = cell.sequence(x, state)
    ys2, final2 = cell.sequence(x, state)  # graph 1 still holds its saved buffers
    for ys, final in ((ys1, final1), (ys2, final2)):
        loss = (w * ys).sum() + sum((w[0] * f).sum() for f in leaves(final))
        grads = torch.autograd.grad(loss, inputs)
        torch.testing.assert_close(ys, alone[0], rtol=0, atol=0)
        for g, g_alone in zip(grads, alone[2]):
            torch.testing.assert_close(g, g_alone, rtol=0, atol=0)
    count, _, free = built.buffer_pool_stats()
    assert count > 0 and free > 0


def test_a_buffer_moved_to_shared_memory_is_not_handed_out_again(built):
    # share_memory_ moves a storage to memory other processes map; it must stay theirs (the
    # sharing keeps a reference to the storage, so the pool never sees it free)
    built.buffer_pool_clear()
    shape = [32, 256, 256]  # 8 MB
    a = built.sequence_buffer(shape, torch.float32)
    kept = a.data_ptr()
    a.share_memory_()
    moved = a.data_ptr()
    assert moved != kept
    assert built.buffer_pool_stats()[2] == 1  # a's data left the pool's memory, which is free
    b = built.sequence_buffer(shape, torch.float32)
    assert b.data_ptr() == kept and a.data_ptr() == moved
    b.fill_(1.0)
    a.fill_(2.0)
    assert float(b.sum()) == b.numel()  # the two never share memory
    del a, b
    assert list(built.buffer_pool_stats()) == [1, 8 * 2**20, 1]  # nothing kept for nothing
    built.buffer_pool_clear()


def test_lent_buffers_are_ordinary_tensors_in_the_callers_mode(built):
    # exactly the asked size, not a view (in-place and autograd see a tensor of its own), and an
    # inference tensor only when asked for in inference mode: a buffer first made under
    # torch.inference_mode serves ordinary code afterwards
    built.buffer_pool_clear()
    shape = [64, 128, 160]  # 5 MB, kept in a 5 MB buffer; a 4.5 MB ask reuses it
    with torch.inference_mode():
        a = built.sequence_buffer(shape, torch.float32)
        assert a.is_inference()
        kept = a.data_ptr()
    del a
    b = built.sequence_buffer([64, 128, 144], torch.float32)
    assert b.data_ptr() == kept and not b.is_inference() and not b._is_view()
    assert b.untyped_storage().nbytes() == b.nbytes  # no bytes of an earlier call behind it
    b.add_(1.0)
    built.buffer_pool_clear()


def test_training_after_inference_with_the_same_shapes(built, monkeypatch):
    use(monkeypatch, "kernel", built)
    built.buffer_pool_clear()
    cell = make_cell(LayerNormLSTMCell, 32, 64, torch.float32, seed=6)
    x = torch.randn(80, 64, 32)  # (T, B, 4H) buffers of 5.2 MB: pooled
    state = cell.initial_state(64)
    with torch.inference_mode():
        cell.sequence(x, state)
    ys, _ = cell.sequence(x.requires_grad_(), state)
    assert not ys.is_inference() and not ys._is_view()
    ys.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def _panels_or_skip(built, w):
    panels = built.pack_panels(w)
    if panels.dim() != 3:
        pytest.skip("this CPU has no AVX-512: the loops lay W out for oneDNN instead")
    return panels


@pytest.mark.parametrize(
    "M, K, N",
    [(1, 1, 1), (3, 5, 17), (4, 16, 64), (7, 33, 130), (9, 64, 80), (16, 256, 1024), (2, 3, 200)],
)
def test_panel_product_equals_mm(M, K, N, built):
    # rnnkit's per-step kernel (common.h, panel_product): every tail of rows (blocks of 4) and
    # columns (panels of 64, vectors of 16), with a bias, without, and accumulating
    torch.manual_seed(M * 100 + N)
    w, b = torch.randn(N, K), torch.randn(N)
    panels = _panels_or_skip(built, w)
    assert panels.shape == (N, K, 1)
    assert panels.untyped_storage().nbytes() == (N + 15) // 16 * 16 * K * 4
    # rows and columns of bigger buffers, as the loops pass a block of a batch's rows
    h = torch.randn(M + 2, K + 3)[1 : M + 1, :K]
    buffer = torch.full((M + 3, N + 5), 7.0)
    out = buffer[2 : M + 2, :N]
    want = h.double() @ w.double().t()
    built.step_product(out, h, w.t(), panels, b)
    torch.testing.assert_close(out.double(), want + b.double(), rtol=1e-5, atol=1e-4)
    built.step_product(out, h, w.t(), panels, None)
    torch.testing.assert_close(out.double(), want, rtol=1e-5, atol=1e-4)
    before = out.clone()
    built.step_product(out, h, w.t(), panels, None, accumulate=True)
    torch.testing.assert_close(out.double(), before.double() + want, rtol=1e-5, atol=1e-4)
    assert (buffer[:2] == 7.0).all() and (buffer[M + 2 :] == 7.0).all()
    assert (buffer[:, N:] == 7.0).all()  # nothing written beyond the last column


def test_panels_of_a_transposed_view_and_row_independence(built, two_threads):
    # the backward passes W^T as a view; each row's sum does not depend on the other rows, the
    # number of threads or how the panels were shared out among them
    torch.manual_seed(5)
    w = torch.randn(300, 70)
    panels = _panels_or_skip(built, w.t())
    assert torch.equal(panels, built.pack_panels(w.t().contiguous()))
    h = torch.randn(13, 300)
    whole = torch.empty(13, 70)
    built.step_product(whole, h, w, panels, None)
    for i in (0, 6, 12):
        one = torch.empty(1, 70)
        built.step_product(one, h[i : i + 1], w, panels, None)
        assert torch.equal(one[0], whole[i])
    torch.set_num_threads(1)
    serial = torch.empty(13, 70)
    built.step_product(serial, h, w, panels, None)
    assert torch.equal(serial, whole)


def test_step_product_refuses_a_mismatched_layout(built):
    w = torch.randn(32, 8)
    panels = _panels_or_skip(built, w)
    with pytest.raises(RuntimeError, match="do not match the packed weight"):
        built.step_product(torch.empty(4, 32), torch.randn(4, 9), w.t(), panels, None)
    # a layout of the same size for another shape: W (16, 16) against (32, 8)
    other = built.pack_panels(torch.randn(16, 16))
    assert other.untyped_storage().nbytes() == panels.untyped_storage().nbytes()
    with pytest.raises(RuntimeError, match="do not match the packed weight"):
        built.step_product(torch.empty(4, 32), torch.randn(4, 8), w.t(), other, None)
    with pytest.raises(RuntimeError, match="2-D CPU tensors"):
        built.step_product(torch.empty(4, 32), torch.randn(4, 8, 1), w.t(), panels, None)
    with pytest.raises(RuntimeError, match="not both"):
        built.step_product(torch.empty(4, 32), torch.randn(4, 8), w.t(), panels, torch.zeros(32),
                           accumulate=True)  # fmt: skip
