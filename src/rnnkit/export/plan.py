"""What each task exports: its graphs (a module, example inputs, named axes) and what a client
needs beside them (vocabulary, labels, scalers), written to ``export.json``.

One builder per task kind, in ``BUILDERS``; a new task adds one function and one line.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from rnnkit.export import graphs as g
from rnnkit.state import leaves
from rnnkit.tasks.base import Loaded

Axes = list[str | None]
"""One name per axis: a name (``batch``, ``time``...) for a dynamic axis, None for a fixed one."""


@dataclass
class Graph:
    """One exported model file.

    Attributes:
        name: the file's stem (``step``, ``sequence``, ``scores``...).
        module: the wrapper (``rnnkit.export.graphs``) that computes it.
        inputs: ``{name: (example tensor, axes)}`` in call order.
        outputs: ``{name: axes}`` in return order.
        about: one line for ``export.json``.
    """

    name: str
    module: nn.Module
    inputs: dict[str, tuple[Tensor, Axes]]
    outputs: dict[str, Axes]
    about: str
    dynamic_time: bool = True


@dataclass
class Plan:
    """A run's graphs and what a client needs beside them."""

    graphs: list[Graph]
    client: dict = field(default_factory=dict)
    limitations: list[str] = field(default_factory=list)


def _state_io(layer: nn.Module, batch: int, suffix: str = "") -> dict[str, tuple[Tensor, Axes]]:
    """The state tensors of ``layer`` as example inputs ``(L*D, B, H)`` with a batch axis."""
    names = g.state_names(layer)
    return {
        f"{n}{suffix}": (s.expand(-1, batch, -1).contiguous(), [None, "batch", None])
        for n, s in zip(names, leaves(layer.initial_state(1)))
    }


def _state_out(layer: nn.Module) -> dict[str, Axes]:
    return {f"{n}_out": [None, "batch", None] for n in g.state_names(layer)}


def _custom_note(sequence: nn.Module | None) -> list[str]:
    """What export.json says when a custom cell's whole-sequence graph could not be made."""
    if sequence is not None and sequence.rnn.dynamic_time:
        return []
    return [
        "this cell's time loop could not be scripted (a bidirectional layer or a state of more "
        "than two tensors): no whole-sequence model; a client loops the step model"
    ]


# -- the tasks -----------------------------------------------------------------------------------
def plan_lm(run: Loaded) -> Plan:
    model, vocab = run.model, run.extra["vocab"]
    B, T = 2, 5
    tokens = torch.zeros(B, T, dtype=torch.long)
    state = _state_io(model.rnn, B)
    step = Graph(
        "step",
        g.TokenSteps(model, step=True),
        {"tokens": (tokens[:, 0], ["batch"]), **state},
        {"logits": ["batch", None], **_state_out(model.rnn)},
        "one step: tokens (B,) and the state -> next-token logits (B, V) and the next state",
    )
    graphs = [step]
    sequence = g.TokenSteps(model, step=False)
    if sequence.rnn.dynamic_time:
        graphs.append(
            Graph(
                "sequence",
                sequence,
                {"tokens": (tokens, ["batch", "time"]), **state},
                {"logits": ["batch", "time", None], **_state_out(model.rnn)},
                "a whole sequence: tokens (B, T) and the state -> logits (B, T, V), final state",
            )
        )
    symbols = vocab.symbols if vocab.kind != "byte" else [chr(i) for i in range(256)]
    client = {
        "vocabulary": {"kind": vocab.kind, "tokens": symbols, "unknown": vocab.UNKNOWN},
        "sampling": (
            "read the prime (default a newline) through `step` one token at a time from the "
            "zero state; the last prime token's logits give the first new token; argmax is "
            "`rnnkit sample --argmax`. A byte vocabulary decodes the bytes as UTF-8. A word "
            "vocabulary holds lower-cased words and punctuation marks (rnnkit.text.tokens."
            "tokenize), starts after its unknown token without a prime, and joins words with "
            "spaces."
        ),
    }
    return Plan(graphs, client, _custom_note(sequence))


def plan_classify(run: Loaded) -> Plan:
    model, encoder, labels = run.model, run.extra["encoder"], run.extra["labels"]
    B, T = 2, 5
    if encoder.vocab is not None:
        inputs = (torch.ones(B, T, dtype=torch.long), ["batch", "time"])
    else:
        inputs = (torch.zeros(B, T, encoder.feature_size), ["batch", "time", None])
    module = g.Scores(model)
    if not module.rnn.dynamic_time:
        raise ValueError(
            f"export of a bidirectional {run.task['kind']} run needs a cell with torch's fused "
            "kernel (lstm, gru, rnn, rnn_relu) for its dynamic time axis; see docs/export.md"
        )
    aligned = module.aligned
    graph = Graph(
        "scores",
        module,
        {"inputs": inputs, "lengths": (torch.tensor([T, T - 2]), ["batch"])},
        {"scores": ["batch", "time", None] if aligned else ["batch", None]},
        "padded inputs and their lengths -> class scores (logits)"
        + (", one row per step" if aligned else ""),
    )
    client = {
        "labels": labels.classes,
        "input": {
            "kind": encoder.kind,
            "max_length": encoder.max_length,
            **(
                {
                    "tokens": encoder.vocab.tokens,
                    "level": encoder.vocab.level,
                    "pad_id": 0,
                    "unknown_id": 1,
                }
                if encoder.vocab is not None
                else {}
            ),
            **(
                {
                    "mean": encoder.mean,
                    "std": encoder.std,
                    "scaling": "(x - mean) / std per feature",
                }
                if encoder.mean is not None
                else {}
            ),
        },
    }
    return Plan([graph], client)


def plan_forecast(run: Loaded) -> Plan:
    from rnnkit.tasks.forecast.task import point_index

    model, data, scalers = run.model, run.extra["data_cfg"], run.extra["scalers"]
    auto = data.mode != "direct"
    window = data.lookback
    inputs = run.task["inputs"]
    module = g.Forecast(model, horizon=data.horizon, autoregressive=auto, point=point_index(data))
    graph = Graph(
        "forecast",
        module,
        {"window": (torch.zeros(2, window, inputs), ["batch", "time", None])},
        {"forecast": ["batch", None, None]},
        "a scaled window (B, T, F) -> the scaled forecast (B, horizon, Q)",
        dynamic_time=module.rnns[0].dynamic_time,
    )
    client = {
        "horizon": data.horizon,
        "window": window,
        "mode": data.mode,
        "quantiles": list(data.quantile_list),
        "scalers": {k: s.to_json() for k, s in scalers.items()},
        "reference": data.reference,
        "units": (
            "inputs: each feature column transformed (log/sqrt/none) then (x - mean) / std with "
            "the series' scaler; the forecast is relative to `reference` (the last scaled input "
            "value for `last`, the seasonal naive for `seasonal`, 0 for `none`): add it, then "
            "target = z * std[0] + mean[0] and undo the transform"
        ),
        "data": run.task["data"],
    }
    notes = [] if graph.dynamic_time else [
        "a custom cell's forecast model is traced for the run's window length"
    ]  # fmt: skip
    return Plan([graph], client, notes)


def plan_generate(run: Loaded) -> Plan:
    model, vocab, conditions = run.model, run.extra["vocab"], run.extra["conditions"]
    B, T = 2, 5
    start = model.start(torch.zeros(B, dtype=torch.long))
    z = start.condition.detach()
    state = _state_io(model.rnn, B)
    tokens = torch.full((B, T), model.bos_id, dtype=torch.long)
    graphs = [
        Graph(
            "start",
            g.GeneratorStart(model),
            {"condition": (torch.zeros(B, dtype=torch.long), ["batch"])},
            {"z": ["batch", None], **_state_out(model.rnn)},
            "a condition id (B,) -> its vector z (B, C) and the decoder's first state",
        ),
        Graph(
            "step",
            g.GeneratorSteps(model, step=True),
            {"tokens": (tokens[:, 0], ["batch"]), "z": (z, ["batch", None]), **state},
            {"logits": ["batch", None], **_state_out(model.rnn)},
            "one step: previous tokens (B,), z and the state -> logits (B, V), next state",
        ),
    ]
    sequence = g.GeneratorSteps(model, step=False)
    if sequence.rnn.dynamic_time:
        graphs.append(
            Graph(
                "sequence",
                sequence,
                {"tokens": (tokens, ["batch", "time"]), "z": (z, ["batch", None]), **state},
                {"logits": ["batch", "time", None], **_state_out(model.rnn)},
                "teacher-forced tokens (B, T) (<bos> first), z and the state -> logits (B, T, V)",
            )
        )
    client = {
        "vocabulary": {"tokens": vocab.tokens, "level": vocab.level},
        "conditions": conditions,
        "bos_id": model.bos_id,
        "eos_id": model.eos_id,
    }
    return Plan(graphs, client, _custom_note(sequence))


def plan_seq2seq(run: Loaded) -> Plan:
    model, src_vocab, tgt_vocab = run.model, run.extra["source_vocab"], run.extra["target_vocab"]
    encoder = g.Encoder(model)
    if not encoder.encoder.dynamic_time:
        raise ValueError(
            "export of a seq2seq run with a bidirectional encoder needs a cell with torch's "
            "fused kernel (lstm, gru, rnn, rnn_relu) for its dynamic time axis; see "
            "docs/export.md"
        )
    B, S = 2, 6
    source = torch.full((B, S), 4, dtype=torch.long)
    lengths = torch.tensor([S, S - 2])
    with torch.no_grad():
        values, keys, *_ = encoder(source, lengths)
    state = _state_io(model.decoder, B)
    graphs = [
        Graph(
            "encoder",
            encoder,
            {"source": (source, ["batch", "source_time"]), "lengths": (lengths, ["batch"])},
            {
                "values": ["batch", "source_time", None],
                "keys": ["batch", "source_time", None],
                **_state_out(model.decoder),
            },
            "padded source ids (B, S) and lengths -> attention memory and the decoder's state",
        ),
        Graph(
            "decoder_step",
            g.DecoderStep(model),
            {
                "tokens": (torch.full((B,), model.bos_id, dtype=torch.long), ["batch"]),
                "values": (values, ["batch", "source_time", None]),
                "keys": (keys, ["batch", "source_time", None]),
                "lengths": (lengths, ["batch"]),
                **state,
            },
            {
                "logits": ["batch", None],
                "weights": ["batch", "source_time"],
                **_state_out(model.decoder),
            },
            "one target step with attention: previous tokens (B,) -> logits (B, V), weights",
        ),
    ]
    client = {
        "source_vocabulary": {"tokens": src_vocab.tokens, "level": src_vocab.level},
        "target_vocabulary": {"tokens": tgt_vocab.tokens, "level": tgt_vocab.level},
        "bos_id": model.bos_id,
        "eos_id": model.eos_id,
        "pad_id": model.pad_id,
        "max_length": "2 * source length + 10 (as rnnkit predict)",
    }
    return Plan(graphs, client)


BUILDERS: dict[str, Callable[[Loaded], Plan]] = {
    "lm": plan_lm,
    "classify": plan_classify,
    "tag": plan_classify,
    "forecast": plan_forecast,
    "generate": plan_generate,
    "seq2seq": plan_seq2seq,
}


def plan_for(run: Loaded) -> Plan:
    """The graphs of a loaded run (``rnnkit.tasks.base.load_run``)."""
    kind = run.task["kind"]
    if kind not in BUILDERS:
        raise ValueError(f"no export for {kind} runs (export knows {', '.join(BUILDERS)})")
    run.model.eval()
    with torch.no_grad():
        return BUILDERS[kind](run)
