"""Time every cell's layer against torch.nn.LSTM in the same run, how it scales with T, and scans.

Table 1, at each configuration (input size = hidden size, time-major input)

    L2 H256 B32 T128    2 layers, hidden 256, batch 32, 128 steps
    L1 H128 B64 T256    1 layer,  hidden 128, batch 64, 256 steps

times every contender of ``CONTENDERS`` in two modes, ``fwd+bwd`` (loss = ``output.sum()``,
backward to every parameter and the input) and ``fwd`` (under ``torch.no_grad()``):

    nn.LSTM     torch.nn.LSTM, the reference every ratio divides by
    native      rnnkit.LSTM (torch's fused kernels underneath), torch's weights
    reference   rnnkit.LSTM(backend="reference"), the readable Python time loop (forward
                only, its traced step runs in C++: ``rnnkit.layers.step_program``)
    lnlstm      layer-normalised LSTM (the fused engine of rnnkit.cells.layer_norm_fused)
    lngru       layer-normalised GRU
    mingru      minGRU (the parallel scan)
    minlstm     minLSTM (the parallel scan)
    user-gru    rnnkit.Recurrent(UserGRUCell): a plain GRU cell written as the Recurrent docs
                show, a module mapping ``(x_t, h) -> (y_t, h)`` with no ``project_input``;
                its input side is hoisted out of the loop (``rnnkit.layers.hoist``) and,
                forward only, the rest of its step runs in C++ (``rnnkit.layers.step_program``)
    user-gru-unhoisted
                the same with ``hoist=False``: every step runs the whole ``forward`` in Python
    lstm+weight-drop, lstm+recurrent-dropout, lstm+zoneout
                the LSTM with each regulariser on (--weight-drop 0.5, --recurrent-dropout
                0.25, --zoneout 0.1), in training mode so that it acts
    gemm-floor  not a cell: only the matrix products an LSTM layer needs, through torch's
                matmul (``W_ih x`` over the whole sequence, then ``h W_hh^T`` once per step,
                with one add and a slice in between to chain the steps, no gate maths). Any
                time loop of Python steps built on torch's matrix products costs at least
                this; nn.LSTM's oneDNN kernel, and rnnkit's C++ loops, make the same products
                with weights laid out once per call

The registered cells are built as the CLI builds them (``rnnkit.layers.make_layer``).

Table 2, T-scaling: time per step (fwd+bwd) at T = 64, 256, 1024 (B 16, H 64) and the ratio of
per-step times T=1024 / T=64. A loop whose per-step cost does not depend on T gives ~1.0.

Table 3: the min-RNN scans against the same cells' step loops at T = 4096 (B 8, H 64,
fwd+bwd), from ``benchmarks/min_rnn_scan.py``.

Table 4: ``rnnkit.GRU(backend="fused")`` (rnnkit's C++ time loop) against ``torch.nn.GRU`` with
the same weights, at table 1's two configurations, fwd+bwd and fwd, interleaved; the ratio
divides by nn.GRU's median in the same run, and ``max |diff|`` is the largest gap between the
two outputs (and between the input gradients, fwd+bwd).

Fairness on a small, noisy machine (``benchmarks/timing.py``): every contender is warmed up
first; then each round runs every contender once, in an order that rotates every round, and
times each iteration on its own. The tables print the median over rounds and the spread
(min-max) in ms; ratios divide medians measured in the same run. Read ratios, not absolute
times. On a 2-core machine that other processes load, two torch threads hurt the contenders made
of large whole-sequence operations (the scans, the engines' input side, oneDNN's LSTM) far more
than Python step loops of small operations, which never use the second thread: compare
``--threads 1`` before believing a ratio taken under load.

Run::

    PYTHONPATH=src python benchmarks/cells.py               # full run (minutes on 2 CPU cores)
    PYTHONPATH=src python benchmarks/cells.py --quick       # smoke run: 2 rounds, shorter scans
    PYTHONPATH=src python benchmarks/cells.py --threads 1 --repeats 30
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable

import torch
from min_rnn_scan import scan_vs_loop
from timing import Shape, interleaved, spread
from torch import Tensor, nn

import rnnkit
from rnnkit.layers import make_layer

MODES = ("fwd+bwd", "fwd")
SCALING_STEPS = (64, 256, 1024)
SCALING_BATCH, SCALING_HIDDEN = 16, 64


SHAPES = (
    Shape(num_layers=2, hidden_size=256, batch_size=32, steps=128),
    Shape(num_layers=1, hidden_size=128, batch_size=64, steps=256),
)


class UserGRUCell(nn.Module):
    """A GRU step as a user would write it for ``rnnkit.Recurrent``: ``(x_t, h) -> (h, h)``."""

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.ih = nn.Linear(input_size, 3 * hidden_size)
        self.hh = nn.Linear(hidden_size, 3 * hidden_size)

    def forward(self, x: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:  # x (B, I), h (B, H)
        xr, xz, xn = self.ih(x).chunk(3, -1)
        hr, hz, hn = self.hh(h).chunk(3, -1)
        r = torch.sigmoid(xr + hr)  # reset gate
        z = torch.sigmoid(xz + hz)  # update gate
        n = torch.tanh(xn + r * hn)  # candidate state
        h = (1 - z) * n + z * h  # (B, H)
        return h, h


class GemmFloor(nn.Module):
    """An LSTM's matrix products and nothing else: ``h_t = (W_ih x_t + h_{t-1} W_hh^T)[:, :H]``."""

    def __init__(self, hidden_size: int, num_layers: int) -> None:
        super().__init__()
        H = hidden_size
        self.w_ih = nn.ParameterList(nn.Parameter(torch.randn(4 * H, H) / H**0.5)
                                     for _ in range(num_layers))  # fmt: skip
        self.w_hh = nn.ParameterList(nn.Parameter(torch.randn(4 * H, H) / H**0.5)
                                     for _ in range(num_layers))  # fmt: skip

    def forward(self, x: Tensor) -> tuple[Tensor, None]:  # x (T, B, H)
        H = x.shape[-1]
        for w_ih, w_hh in zip(self.w_ih, self.w_hh):
            xg = torch.nn.functional.linear(x, w_ih)  # (T, B, 4H), one product
            h, hs, w_t = x.new_zeros(x.shape[1], H), [], w_hh.t()
            for xg_t in xg.unbind(0):
                h = (xg_t + h @ w_t)[:, :H]  # (B, H)
                hs.append(h)
            x = torch.stack(hs)
        return x, None


def _torch_lstm(H: int, L: int) -> nn.Module:
    return nn.LSTM(H, H, num_layers=L)


def _rnnkit_lstm(backend: str) -> Callable[[int, int], nn.Module]:
    def build(H: int, L: int) -> nn.Module:
        torch.manual_seed(0)  # the same weights as nn.LSTM's (built after the same seed)
        layer = rnnkit.LSTM(H, H, num_layers=L, backend=backend)
        layer.load_state_dict(_torch_lstm(H, L).state_dict(), strict=True)
        return layer

    return build


def _registered(name: str, **options: float) -> Callable[[int, int], nn.Module]:
    # built in training mode (a module's default): the regularisers' masks are drawn
    return lambda H, L: make_layer(name, H, H, num_layers=L, batch_first=False, **options)


# name -> build(hidden_size, num_layers); the first is the reference every ratio divides by.
CONTENDERS: dict[str, Callable[[int, int], nn.Module]] = {
    "nn.LSTM": _torch_lstm,
    "native": _rnnkit_lstm("native"),
    "reference": _rnnkit_lstm("reference"),
    "lnlstm": _registered("lnlstm"),
    "lngru": _registered("lngru"),
    "mingru": _registered("mingru"),
    "minlstm": _registered("minlstm"),
    "user-gru": lambda H, L: rnnkit.Recurrent(UserGRUCell, H, H, num_layers=L),
    # the same with its input side left in the loop, as before rnnkit.layers.hoist
    "user-gru-unhoisted": lambda H, L: rnnkit.Recurrent(
        UserGRUCell, H, H, num_layers=L, hoist=False
    ),
    # the LSTM with each regulariser on, in training mode: weight drop keeps torch's fused
    # kernel; variational dropout and zoneout change every step, so they take the time loop
    "lstm+weight-drop": _registered("lstm", weight_drop=0.5),
    "lstm+recurrent-dropout": _registered("lstm", recurrent_dropout=0.25),
    "lstm+zoneout": _registered("lstm", zoneout=0.1),
    "gemm-floor": GemmFloor,
}
SCALING = ("reference", "lnlstm", "mingru", "user-gru")


def iteration(model: nn.Module, x: Tensor, mode: str) -> Callable[[], None]:
    """One timed iteration: forward+backward (gradients reset first) or forward only."""

    def train() -> None:
        model.zero_grad(set_to_none=True)
        x.grad = None
        output, _ = model(x)  # (T, B, H)
        output.sum().backward()

    def infer() -> None:
        with torch.no_grad():
            model(x)

    return train if mode == "fwd+bwd" else infer


def table_contenders(repeats: int, names: list[str]) -> None:
    print(
        f"{'config':<18} {'mode':<8} {'contender':<22} {'median ms':>10} {'min-max ms':>16}"
        f" {'/ nn.LSTM':>10}"
    )
    for shape in SHAPES:
        torch.manual_seed(0)
        H, L = shape.hidden_size, shape.num_layers
        models = {name: CONTENDERS[name](H, L) for name in names}
        x = torch.randn(shape.steps, shape.batch_size, H)
        for mode in MODES:
            xin = x.clone().requires_grad_(mode == "fwd+bwd")
            samples = interleaved({n: iteration(m, xin, mode) for n, m in models.items()}, repeats)
            base = statistics.median(samples[names[0]])
            for name, times in samples.items():
                median = statistics.median(times)
                print(
                    f"{shape!s:<18} {mode:<8} {name:<22} {median:>10.2f} {spread(times):>16}"
                    f" {median / base:>10.2f}"
                )


def table_scaling(repeats: int) -> None:
    print(
        f"\nT-scaling, fwd+bwd, B{SCALING_BATCH} H{SCALING_HIDDEN}: ms per step (median, min-max)"
    )
    torch.manual_seed(0)
    H = SCALING_HIDDEN
    models = {name: CONTENDERS[name](H, 1) for name in SCALING}
    runs = {}
    for T in SCALING_STEPS:
        x = torch.randn(T, SCALING_BATCH, H, requires_grad=True)
        for name, model in models.items():
            runs[(name, T)] = iteration(model, x, "fwd+bwd")
    samples = interleaved(runs, repeats)
    header = "".join(f" {f'T={T}':>20}" for T in SCALING_STEPS)
    print(f"{'contender':<10}{header} {'T=1024/T=64':>12} {'(of minima)':>12}")
    for name in models:
        per_step = {T: [t / T for t in samples[(name, T)]] for T in SCALING_STEPS}
        cells = "".join(
            f" {statistics.median(v):>7.3f} ({spread(v, 3)})".rjust(21) for v in per_step.values()
        )
        first, last = per_step[SCALING_STEPS[0]], per_step[SCALING_STEPS[-1]]
        ratio = statistics.median(last) / statistics.median(first)
        # The ratio of minima is the least disturbed by other processes on shared cores.
        print(f"{name:<10}{cells} {ratio:>12.2f} {min(last) / min(first):>12.2f}")


def table_scans(repeats: int, steps: int) -> None:
    print(f"\nmin-RNN scan vs its step loop, fwd+bwd, T={steps} B8 H64 (median of {repeats})")
    print(f"{'cell':<10} {'scan ms':>10} {'loop ms':>10} {'loop/scan':>10} {'max gap':>10}")
    for name in ("mingru", "minlstm"):
        r = scan_vs_loop(name, T=steps, repeats=repeats)
        print(
            f"{name:<10} {r['scan_ms']:>10.1f} {r['loop_ms']:>10.1f} {r['ratio']:>9.1f}x"
            f" {r['gap']:>10.1e}"
        )


def table_fused_gru(repeats: int) -> None:
    print(f"\nfused GRU vs torch.nn.GRU (same weights; median of {repeats}, ms)")
    print(
        f"{'config':<18} {'mode':<8} {'contender':<12} {'median ms':>10} {'min-max ms':>16}"
        f" {'/ nn.GRU':>9} {'max |diff|':>11}"
    )
    for shape in SHAPES:
        torch.manual_seed(0)
        H, L = shape.hidden_size, shape.num_layers
        reference = nn.GRU(H, H, num_layers=L)
        fused = rnnkit.GRU(H, H, num_layers=L, backend="fused")
        fused.load_state_dict(reference.state_dict(), strict=True)
        x = torch.randn(shape.steps, shape.batch_size, H)
        for mode in MODES:
            xs = {n: x.clone().requires_grad_(mode == "fwd+bwd") for n in ("nn.GRU", "fused")}
            models = {"nn.GRU": reference, "fused": fused}
            outputs = {}
            for name, model in models.items():  # the same computation, kept for the gap
                output = model(xs[name])[0]
                if mode == "fwd+bwd":
                    output.sum().backward()
                    outputs[name] = (output.detach(), xs[name].grad)
                else:
                    outputs[name] = (output.detach(),)
            gap = max(
                (a - b).abs().max().item() for a, b in zip(outputs["nn.GRU"], outputs["fused"])
            )
            runs = {n: iteration(models[n], xs[n], mode) for n in models}
            samples = interleaved(runs, repeats)
            base = statistics.median(samples["nn.GRU"])
            for name, times in samples.items():
                median = statistics.median(times)
                shown = f"{gap:>11.1e}" if name == "fused" else f"{'':>11}"
                print(
                    f"{shape!s:<18} {mode:<8} {name:<12} {median:>10.2f} {spread(times):>16}"
                    f" {median / base:>9.2f} {shown}"
                )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (2)")
    parser.add_argument("--repeats", type=int, default=None, help="timed rounds (15; quick: 2)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 rounds, T=1024 scans")
    parser.add_argument(
        "--only",
        nargs="+",
        choices=list(CONTENDERS)[1:],
        help="table 1 with these contenders only (nn.LSTM is always timed)",
    )
    parser.add_argument(
        "--tables", default="1,2,3,4", help="which tables to print, comma-separated (1,2,3,4)"
    )
    args = parser.parse_args()
    if args.threads < 1:
        parser.error(f"--threads must be >= 1, got {args.threads}")
    repeats = args.repeats or (2 if args.quick else 15)
    if repeats < 1:
        parser.error(f"--repeats must be >= 1, got {repeats}")
    tables = set(args.tables.split(","))
    if not tables <= {"1", "2", "3", "4"}:
        parser.error(f"--tables takes 1, 2, 3 and 4, got {args.tables!r}")
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, CPU, {args.threads} threads, {repeats} rounds")
    names = list(CONTENDERS)[:1] + (args.only or list(CONTENDERS)[1:])
    if "1" in tables:
        table_contenders(repeats, names)
    if "2" in tables:
        table_scaling(repeats)
    if "3" in tables:
        table_scans(max(repeats // 2, 2), 1024 if args.quick else 4096)
    if "4" in tables:
        table_fused_gru(repeats)


if __name__ == "__main__":
    main()
