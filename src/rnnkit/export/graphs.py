"""The graphs that are exported: a run's model as plain tensors in, plain tensors out.

Each task's model is wrapped in a module whose ``forward`` takes and returns only tensors, with
the recurrent state as explicit tensors (``h``, and ``c`` for an LSTM, each ``(L, B, H)``), so
that a client without rnnkit can carry the state itself. The wrappers compute from the model's
own parameters and submodules (embeddings, heads, bridges, attention) and never call the rnnkit
layers' ``forward``:

- a standard layer (``lstm``, ``gru``, ``rnn``, ``rnn_relu``) runs as a ``torch.nn`` twin with
  the same weights; the legacy ONNX exporter maps it to the ONNX ``LSTM``/``GRU``/``RNN`` op,
  whose time axis is dynamic, and ``torch.jit.script`` compiles it;
- any other cell runs its own step (``project_input``/``step`` or its forward). A step model
  traces it directly; a whole-sequence model traces one step of the layer stack and scripts the
  time loop around it (``_scripted_loop``), which the ONNX exporter writes as an ONNX ``Loop``,
  so the time axis stays dynamic. A bidirectional custom layer has no scripted loop.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from rnnkit.architectures.attention import Memory
from rnnkit.architectures.many_to_one import pool
from rnnkit.layers.standard import GRU, LSTM, RNN
from rnnkit.state import from_leaves, leaves, lengths_mask


def state_names(layer: nn.Module) -> list[str]:
    """The names of a layer's state tensors: ``["h"]``, or ``["h", "c"]`` for an LSTM (a custom
    cell's state of more tensors: ``s0``, ``s1``...)."""
    parts = leaves(layer.initial_state(1))
    if len(parts) == 1:
        return ["h"]
    if isinstance(layer, LSTM):
        return ["h", "c"]
    return [f"s{i}" for i in range(len(parts))]


def _torch_twin(layer: nn.Module) -> nn.Module:
    """A ``torch.nn`` layer with ``layer``'s weights, batch-first, without dropout (eval)."""
    kwargs = dict(
        num_layers=layer.num_layers,
        bias=layer.bias,
        batch_first=True,
        bidirectional=layer.bidirectional,
    )
    if isinstance(layer, LSTM):
        twin = nn.LSTM(layer.input_size, layer.hidden_size, proj_size=layer.proj_size, **kwargs)
    elif isinstance(layer, GRU):
        twin = nn.GRU(layer.input_size, layer.hidden_size, **kwargs)
    else:
        twin = nn.RNN(
            layer.input_size, layer.hidden_size, nonlinearity=layer.nonlinearity, **kwargs
        )
    twin.load_state_dict(layer.state_dict(), strict=True)
    if not layer.batch_first:
        raise ValueError("export expects the architectures' batch-first layers")
    return twin.to(next(layer.parameters()).device).eval()


class Recurrence(nn.Module):
    """A recurrent layer as the exported graphs run it: ``(x (B, T, I), state tensors,
    lengths or None) -> (output (B, T, D*H), state tensors)``."""

    def __init__(self, layer: nn.Module, *, dynamic: bool = False) -> None:
        super().__init__()
        self.native = isinstance(layer, (RNN, LSTM, GRU))
        self.num_layers = layer.num_layers
        self.directions = 2 if layer.bidirectional else 1
        self.like = layer.initial_state(1)  # the state's structure, for custom cells
        self.n_state = len(leaves(self.like))
        self.loop: torch.jit.ScriptModule | None = None
        if self.native:
            self.rnn = _torch_twin(layer)
        else:
            self.cells = layer.cells  # the run's own cell modules, shared
            if dynamic and self.directions == 1 and self.n_state <= 2:
                self.loop = _scripted_loop(self.cells, self.like, layer.input_size)

    @property
    def dynamic_time(self) -> bool:
        """Whether an exported graph keeps a dynamic time axis: torch's fused ops do, and a
        custom cell's loop does when scripted (``dynamic=True``)."""
        return self.native or self.loop is not None

    def forward(
        self, x: Tensor, state: list[Tensor], lengths: Tensor | None = None
    ) -> tuple[Tensor, list[Tensor]]:
        if self.native:
            hx = state[0] if self.n_state == 1 else (state[0], state[1])
            if lengths is None:
                out, h_n = self.rnn(x, hx)
            else:
                packed = pack_padded_sequence(
                    x, lengths.cpu(), batch_first=True, enforce_sorted=False
                )
                out, h_n = self.rnn(packed, hx)
                out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.size(1))
            return out, list(leaves(h_n))
        if self.loop is not None:
            xs = x.transpose(0, 1)  # (T, B, I)
            if lengths is None:
                mask = torch.ones(xs.shape[:2], dtype=torch.bool, device=x.device)
            else:
                mask = lengths_mask(lengths, x.size(1)).transpose(0, 1)  # (T, B)
            out, *new = self.loop(xs, mask[..., None], *state)
            return out.transpose(0, 1), list(new)
        return self._loop(x, state, lengths)

    def _loop(self, x: Tensor, state: list[Tensor], lengths: Tensor | None):
        """The custom cells' time loop (unidirectional), as ``rnnkit.layers.unroll`` runs it:
        the input projection hoisted, each step the cell's ``step`` (or its forward)."""
        if self.directions != 1:
            raise ValueError("export of a bidirectional layer of a custom cell is not supported")
        mask = None if lengths is None else lengths_mask(lengths, x.size(1))[..., None]
        finals: list[list[Tensor]] = []
        layer_input = x.transpose(0, 1)  # (T, B, I)
        for k in range(self.num_layers):
            cell = self.cells[k]
            cell_state = from_leaves(self.like, [s[k] for s in state])
            project = getattr(cell, "project_input", None)
            xs = project(layer_input) if project is not None else layer_input
            step = getattr(cell, "step", cell)
            ys = []
            for t, x_t in enumerate(xs.unbind(0)):
                y, new = step(x_t, cell_state)
                if mask is not None:
                    keep = mask[:, t]
                    new = from_leaves(
                        self.like,
                        [torch.where(keep, a, b) for a, b in zip(leaves(new), leaves(cell_state))],
                    )
                    y = y.masked_fill(~keep, 0.0)
                cell_state = new
                ys.append(y)
            layer_input = torch.stack(ys)
            finals.append(list(leaves(cell_state)))
        out = layer_input.transpose(0, 1)
        return out, [torch.stack([f[i] for f in finals]) for i in range(self.n_state)]


class _CellStack(nn.Module):
    """One time step of every layer of custom cells: ``(x_t (B, I), keep (B, 1), *state) ->
    (y_t, *state)``, each state tensor ``(L, B, ...)``; rows with ``keep`` False hold their
    state and output zero (a sequence that has ended), as ``rnnkit.layers.unroll`` does."""

    def __init__(self, cells: nn.ModuleList, like) -> None:
        super().__init__()
        self.cells, self.like = cells, like

    def forward(self, x: Tensor, keep: Tensor, *state: Tensor):
        finals = []
        for k, cell in enumerate(self.cells):
            old = from_leaves(self.like, [s[k] for s in state])
            project = getattr(cell, "project_input", None)
            xp = project(x[None])[0] if project is not None else x
            y, new = getattr(cell, "step", cell)(xp, old)
            parts = [torch.where(keep, a, b) for a, b in zip(leaves(new), leaves(old))]
            x = y.masked_fill(~keep, 0.0)
            finals.append(parts)
        return (x, *[torch.stack([f[i] for f in finals]) for i in range(len(state))])


class _Loop1(nn.Module):
    """The time loop over a traced ``_CellStack`` of a one-tensor state, for scripting."""

    def __init__(self, step: nn.Module) -> None:
        super().__init__()
        self.step = step

    def forward(self, x: Tensor, keep: Tensor, s0: Tensor) -> tuple[Tensor, Tensor]:
        ys: list[Tensor] = []
        for t in range(x.size(0)):
            y, s0 = self.step(x[t], keep[t], s0)
            ys.append(y)
        return torch.stack(ys), s0


class _Loop2(nn.Module):
    """The time loop over a traced ``_CellStack`` of a two-tensor state, for scripting."""

    def __init__(self, step: nn.Module) -> None:
        super().__init__()
        self.step = step

    def forward(
        self, x: Tensor, keep: Tensor, s0: Tensor, s1: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        ys: list[Tensor] = []
        for t in range(x.size(0)):
            y, s0, s1 = self.step(x[t], keep[t], s0, s1)
            ys.append(y)
        return torch.stack(ys), s0, s1


def _scripted_loop(cells: nn.ModuleList, like, in_size: int) -> torch.jit.ScriptModule:
    """A custom cells' time loop that keeps a dynamic time axis: one step of the stack traced
    (the cells' own code, any Python), the loop over it scripted (a TorchScript loop, which the
    ONNX exporter writes as an ONNX ``Loop``)."""
    import warnings

    parts = leaves(like)  # each (L, 1, ...)
    x = torch.zeros(2, in_size)
    keep = torch.ones(2, 1, dtype=torch.bool)
    state = [p.expand(-1, 2, *p.shape[2:]).contiguous() for p in parts]
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        step = torch.jit.trace(_CellStack(cells, like), (x, keep, *state), check_trace=False)
    return torch.jit.script((_Loop1 if len(parts) == 1 else _Loop2)(step))


# -- language model (ManyToMany over tokens) -----------------------------------------------------
class TokenSteps(nn.Module):
    """A token ``ManyToMany`` (a language model): ``(tokens (B, T), *state) -> (logits (B, T, V),
    *state)``; with ``step=True`` tokens ``(B,)`` and logits ``(B, V)``, one step."""

    def __init__(self, model: nn.Module, *, step: bool) -> None:
        super().__init__()
        self.embedding, self.head = model.embedding, model.head
        self.rnn = Recurrence(model.rnn, dynamic=not step)
        self.step = step

    def forward(self, tokens: Tensor, *state: Tensor):
        if self.step:
            tokens = tokens[:, None]  # (B, 1)
        out, new = self.rnn(self.embedding(tokens), list(state))  # (B, T, H)
        logits = self.head(out)  # (B, T, V)
        if self.step:
            logits = logits[:, 0]
        return (logits, *new)


# -- classifier and tagger -----------------------------------------------------------------------
class Scores(nn.Module):
    """A classifier (``ManyToOne``) or tagger (``ManyToMany``): ``(inputs, lengths) -> scores``,
    ``(B, C)`` or, for a tagger, ``(B, T, C)``; the state starts at zero."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.rnn = Recurrence(model.rnn, dynamic=True)
        self.aligned = not hasattr(model, "pooling")

    def forward(self, inputs: Tensor, lengths: Tensor) -> Tensor:
        m = self.model
        x = m.embedding(inputs) if m.embedding is not None else inputs
        B = x.size(0)
        zero = [
            torch.zeros(s.size(0), B, s.size(2), dtype=x.dtype, device=x.device)
            for s in leaves(self.rnn.like)
        ]
        y, _ = self.rnn(x, zero, lengths)  # (B, T, D*H)
        if self.aligned:
            return m.head(y)  # (B, T, C)
        pooled = pool(y, lengths, m.pooling, directions=m.directions, attention=m.attention)
        return m.head(pooled)  # (B, C)


# -- forecaster ----------------------------------------------------------------------------------
class Forecast(nn.Module):
    """A ``Forecaster`` or ``ForecasterEnsemble``: ``window (B, T, F) -> forecast (B, horizon,
    Q)`` in scaled units; an autoregressive model is rolled forward ``horizon`` steps, feeding
    output ``point`` back, as ``Forecaster.rollout`` does."""

    def __init__(self, model: nn.Module, *, horizon: int, autoregressive: bool, point: int):
        super().__init__()
        members = list(model.members) if hasattr(model, "members") else [model]
        self.heads = nn.ModuleList(m.head for m in members)
        self.rnns = nn.ModuleList(Recurrence(m.rnn, dynamic=True) for m in members)
        self.outputs, self.horizon = model.outputs, horizon
        self.autoregressive, self.point = autoregressive, point

    def _read(self, x: Tensor, states: list[list[Tensor]] | None):
        """Every member reads ``x``; the mean of their last step's forecasts, and their states."""
        outs, new = [], []
        for k, (rnn, head) in enumerate(zip(self.rnns, self.heads)):
            if states is None:
                state = [
                    torch.zeros(s.size(0), x.size(0), s.size(2), dtype=x.dtype, device=x.device)
                    for s in leaves(rnn.like)
                ]
            else:
                state = states[k]
            out, state = rnn(x, state)
            outs.append(head(out[:, -1]).unflatten(-1, (-1, self.outputs)))  # (B, h, Q)
            new.append(state)
        return torch.stack(outs).mean(0), new

    def forward(self, window: Tensor) -> Tensor:
        y, states = self._read(window, None)
        if not self.autoregressive:
            return y
        # the ensemble's mean forecast is fed back to every member, as ``rollout`` does
        step = y[:, 0]  # (B, Q)
        steps = [step]
        for _ in range(self.horizon - 1):
            y, states = self._read(step[:, self.point, None, None], states)  # (B, 1, 1) in
            step = y[:, 0]
            steps.append(step)
        return torch.stack(steps, 1)  # (B, horizon, Q)


# -- one-to-many generator -----------------------------------------------------------------------
class GeneratorStart(nn.Module):
    """``OneToMany.start``: ``condition (B,) or (B, F) -> (z (B, C), *state)``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, condition: Tensor):
        start = self.model.start(condition)
        return (start.condition, *leaves(start.rnn))


class GeneratorSteps(nn.Module):
    """``OneToMany`` decoding: ``(tokens, z, *state) -> (logits, *state)``; one step
    (tokens ``(B,)``) with ``step=True``, else teacher-forced tokens ``(B, T)``."""

    def __init__(self, model: nn.Module, *, step: bool) -> None:
        super().__init__()
        self.model = model
        self.rnn = Recurrence(model.rnn, dynamic=not step)
        self.step = step

    def forward(self, tokens: Tensor, z: Tensor, *state: Tensor):
        if self.step:
            tokens = tokens[:, None]
        out, new = self.rnn(self.model._inputs(tokens, z), list(state))
        logits = self.model.head(out)
        if self.step:
            logits = logits[:, 0]
        return (logits, *new)


# -- seq2seq -------------------------------------------------------------------------------------
class Encoder(nn.Module):
    """``Seq2Seq.start``: ``(source (B, S), lengths (B,)) -> (values (B, S, K), keys (B, S, A),
    *decoder state)``; the decoder step rebuilds the mask from the lengths."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.encoder = Recurrence(model.encoder, dynamic=True)
        self.decoder_like = model.decoder.initial_state(1)

    def forward(self, source: Tensor, lengths: Tensor):
        m = self.model
        emb = m.source_embedding(source)
        B, D = source.size(0), m.num_directions
        zero = [
            torch.zeros(s.size(0), B, s.size(2), dtype=emb.dtype, device=emb.device)
            for s in leaves(self.encoder.like)
        ]
        outputs, final = self.encoder(emb, zero, lengths)  # (B, S, D*H)
        keys = m.attention.key_proj(outputs)
        parts = []
        for bridge, enc, dec in zip(m.bridges, final, leaves(self.decoder_like)):
            top = enc[-D:].transpose(0, 1).reshape(B, -1)  # (B, D*H)
            parts.append(torch.tanh(bridge(top)).view(B, dec.size(0), -1).transpose(0, 1))
        return (outputs, keys, *parts)


class DecoderStep(nn.Module):
    """One ``Seq2Seq`` decoding step with attention: ``(tokens (B,), values, keys, lengths,
    *state) -> (logits (B, V), weights (B, S), *state)``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.decoder = Recurrence(model.decoder)

    def forward(self, tokens: Tensor, values: Tensor, keys: Tensor, lengths: Tensor, *state):
        m = self.model
        emb = m.target_embedding(tokens)[:, None]  # (B, 1, E)
        out, new = self.decoder(emb, list(state))  # (B, 1, H)
        memory = Memory(values, keys, lengths_mask(lengths, values.size(1)))
        logits, weights = m._output(out, memory)
        return (logits[:, 0], weights[:, 0], *new)
