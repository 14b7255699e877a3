"""``rnnkit.load(RUN)``: a trained run in Python, for every task, with the CLI's numbers.

    >>> lm = rnnkit.load("runs/shk")
    >>> lm.sample(prime="ROMEO:", length=200, argmax=True)   # = rnnkit sample --argmax
    >>> s = lm.stream()
    >>> for ch in "ROMEO:": logits = s.step(ch)              # one token at a time, state kept

Every object has ``predict(...)`` (the task's ``rnnkit predict``, or for a language model the
next-token log-probabilities of a text) and ``stream()``: an object whose ``step(x)`` reads one
step (a token, a frame, a value) and returns the model's output at that step, keeping the
recurrent state between calls. Generators (``lm``, ``generate``) also have ``sample(...)``.
The calls are the same library calls the CLI makes, on the model loaded once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from rnnkit.decoding import SamplingConfig, sample_text, stepper_for
from rnnkit.state import State
from rnnkit.tasks.base import Loaded, load_run


class Model:
    """A loaded run: ``model`` (the ``nn.Module``, eval mode), ``task`` (its stored task)."""

    def __init__(self, run_dir: str | Path, loaded: Loaded, which: str, device: str) -> None:
        self.run_dir, self.loaded, self.which, self.device = Path(run_dir), loaded, which, device
        self.model = loaded.model.eval()

    @property
    def task(self) -> dict:
        return self.loaded.task

    def __repr__(self) -> str:
        return f"rnnkit.load({str(self.run_dir)!r}): a {self.task['kind']} run"

    def predict(self, *args, **kwargs) -> Any:
        raise NotImplementedError

    def stream(self, *args, **kwargs) -> Any:
        raise NotImplementedError


class _Stepper:
    """One step at a time through a ``step(inputs, state) -> (output, state)`` function."""

    def __init__(self, step, state: State, encode) -> None:
        self._step, self.state, self._encode = step, state, encode

    @torch.inference_mode()
    def step(self, x) -> Tensor:
        """Read one step; return the output there (logits, scores or a forecast)."""
        out, self.state = self._step(self._encode(x), self.state)
        return out[0]


# -- language model ------------------------------------------------------------------------------
class LanguageModel(Model):
    """A ``lm`` run."""

    @property
    def vocab(self):
        return self.loaded.extra["vocab"]

    @torch.inference_mode()
    def predict(self, text: str) -> Tensor:
        """Next-token log-probabilities after each token of ``text``: ``(T, V)``."""
        ids = self.vocab.encode(text).to(self.device)
        return torch.log_softmax(self.model(ids[None])[0][0].float(), -1)

    def sample(self, prime: str = "", length: int = 500, **sampling) -> str:
        """``rnnkit sample RUN``: ``length`` tokens after ``prime``; ``sampling`` takes the
        ``SamplingConfig`` fields (``argmax``, ``temperature``, ``top_k``, ``top_p``, ``seed``)."""
        return sample_text(
            self.model, self.vocab, prime=prime, length=length, sampling=SamplingConfig(**sampling)
        )

    def stream(self) -> _Stepper:
        """A stream from the zero state: ``step(token)`` (a character, byte, word or id) returns
        the logits ``(V,)`` of the token after it, with the stepper ``rnnkit sample`` uses."""
        stepper = stepper_for(self.model)
        vocab = self.vocab
        with torch.inference_mode():
            state = stepper.start(torch.zeros(1, 0, dtype=torch.long, device=self.device))

        def encode(token) -> Tensor:
            if isinstance(token, str):
                ids = vocab.encode(token)
                if ids.numel() != 1:
                    raise ValueError(f"a stream step takes one token, got {token!r}")
                return ids.to(self.device)
            return torch.tensor([int(token)], device=self.device)

        def step(tokens, state):
            logits, state = stepper.step(tokens, state)
            return logits, state

        return _Stepper(step, state, encode)


# -- one-to-many ---------------------------------------------------------------------------------
class Generator(Model):
    """A ``generate`` run: a condition value -> a token sequence."""

    def _texts(self, condition: str, num: int, sampling, beam: int, max_length: int):
        from rnnkit.tasks.generate.run import generate_texts

        extra = self.loaded.extra
        return generate_texts(
            self.model,
            extra["vocab"],
            extra["conditions"],
            condition,
            num=num,
            sampling=sampling,
            beam=beam,
            max_length=max_length,
        )

    def predict(self, condition: str, *, beam: int = 1, max_length: int = 50) -> str:
        """The most likely sequence for ``condition`` (greedy, or beam search)."""
        return self._texts(condition, 1, SamplingConfig(argmax=True), beam, max_length)[0]

    def sample(
        self, condition: str, num: int = 10, *, max_length: int = 50, beam: int = 1, **sampling
    ) -> list[str]:
        """``rnnkit sample RUN --condition C``: ``num`` sequences for ``condition``."""
        config = None if beam > 1 else SamplingConfig(**sampling)
        return self._texts(condition, num, config, beam, max_length)

    def stream(self, condition: str) -> _Stepper:
        """``step(token)`` (a token or an id; ``<bos>`` first) returns the next-token logits."""
        from rnnkit.tasks.generate.task import condition_index

        vocab, conditions = self.loaded.extra["vocab"], self.loaded.extra["conditions"]
        index = torch.tensor([condition_index(conditions, condition)], device=self.device)
        with torch.inference_mode():
            state = self.model.start(index)

        def encode(token) -> Tensor:
            ids = vocab.lookup([token]) if isinstance(token, str) else [int(token)]
            return torch.tensor(ids, device=self.device)

        def step(tokens, state):
            logits, state, _ = self.model.step(tokens, state)
            return logits, state

        return _Stepper(step, state, encode)


# -- classifier and tagger -----------------------------------------------------------------------
class Classifier(Model):
    """A ``classify`` or ``tag`` run."""

    def predict(self, inputs: list, *, top: int = 1) -> list[dict]:
        """``rnnkit predict RUN``'s records (without ``input``): for each input (a text, a list
        of tokens, or a ``(T, F)`` array), ``labels`` (a tagger) or ``top`` (classes and
        probabilities)."""
        from rnnkit.tasks.classify.run import label_inputs

        extra = self.loaded.extra
        return label_inputs(self.model, extra["encoder"], extra["labels"], self.task, inputs, top)

    def stream(self) -> _Stepper:
        """``step(x)`` reads one step (a token, or a feature row ``(F,)``) and returns the class
        scores (logits) of the sequence so far (a tagger: of this step), keeping the state.

        For a unidirectional model; a bidirectional one reads the steps after, so stream it by
        calling ``predict`` on the prefix."""
        model, encoder = self.model, self.loaded.extra["encoder"]
        if model.rnn.bidirectional:
            raise ValueError("a bidirectional model cannot stream: it reads the steps after")
        aligned = not hasattr(model, "pooling")
        pooling = None if aligned else model.pooling
        outputs: list[Tensor] = []

        def encode(x) -> Tensor:
            if encoder.vocab is not None:
                ids = encoder.vocab.lookup([x]) if isinstance(x, str) else [int(x)]
                return model.embedding(torch.tensor([ids], device=self.device))  # (1, 1, E)
            row = (np.asarray(x, dtype=np.float64) - encoder.mean) / encoder.std
            return torch.tensor(row, dtype=torch.float32, device=self.device)[None, None]

        def step(x, state):
            y, state = model.rnn(x, state)  # (1, 1, H)
            if aligned:
                return model.head(y[:, 0]), state
            outputs.append(y[:, 0])
            ys = torch.stack(outputs, 1)  # (1, t, H): the outputs so far, for the pooling
            if pooling == "last":
                pooled = ys[:, -1]
            elif pooling == "mean":
                pooled = ys.mean(1)
            elif pooling == "max":
                pooled = ys.amax(1)
            else:
                pooled = model.attention(
                    ys, torch.ones(ys.shape[:2], dtype=torch.bool, device=ys.device)
                )[0]
            return model.head(pooled), state

        return _Stepper(step, None, encode)


# -- forecaster ----------------------------------------------------------------------------------
class ForecastModel(Model):
    """A ``forecast`` run."""

    def predict(self, data: str | None = None) -> list[dict]:
        """``rnnkit predict RUN``: the ``horizon`` steps after each series of the run's data
        (or of ``data``), one row per series and step."""
        from rnnkit.tasks.forecast.run import predict_run

        return predict_run(self.run_dir, data=data, which=self.which, device=self.device)

    def stream(self) -> _Stepper:
        """``step(row)`` reads one scaled input row ``(F,)`` (a value: ``[v]``) and returns the
        scaled forecast ``(horizon, Q)`` from the state so far (a direct model's head; an
        autoregressive model gives its next step, ``(1, Q)``)."""
        model = self.model
        members = list(model.members) if hasattr(model, "members") else [model]

        def encode(row) -> Tensor:
            x = torch.as_tensor(np.asarray(row, dtype=np.float32), device=self.device)
            return x.reshape(1, 1, -1)

        def step(x, states):
            states = states or [None] * len(members)
            outs, new = zip(*(m(x, s) for m, s in zip(members, states)))
            return torch.stack(outs).mean(0)[:, -1], list(new)  # (1, horizon, Q)

        return _Stepper(step, None, encode)


# -- seq2seq -------------------------------------------------------------------------------------
class Translator(Model):
    """A ``seq2seq`` run."""

    def predict(self, sources: list[str], *, beam: int = 1) -> list[str]:
        """``rnnkit predict RUN``: each source translated (greedy, or beam search)."""
        from rnnkit.tasks.seq2seq.run import predict

        return predict(self.run_dir, sources, beam=beam, which=self.which, device=self.device)

    def stream(self, source: str) -> _Stepper:
        """Encode ``source``; then ``step(token)`` (``<bos>`` first) returns the next-token
        logits ``(V,)`` with attention over the source (``state.memory``)."""
        src, tgt = self.loaded.extra["source_vocab"], self.loaded.extra["target_vocab"]
        ids = torch.tensor([src.encode(source)], device=self.device)
        with torch.inference_mode():
            state = self.model.start(ids, torch.tensor([ids.size(1)], device=self.device))

        def encode(token) -> Tensor:
            return torch.tensor(
                tgt.lookup([token]) if isinstance(token, str) else [int(token)], device=self.device
            )

        def step(tokens, state):
            logits, state, _ = self.model.step(tokens, state)
            return logits, state

        return _Stepper(step, state, encode)


KINDS: dict[str, type[Model]] = {
    "lm": LanguageModel,
    "generate": Generator,
    "classify": Classifier,
    "tag": Classifier,
    "forecast": ForecastModel,
    "seq2seq": Translator,
}


def load(run_dir: str | Path, which: str = "best", device: str = "cpu") -> Model:
    """A trained run, ready to predict, sample and stream (see the module docstring).

    Args:
        run_dir: the run folder (``rnnkit train ... --out RUN``).
        which: ``best`` or ``last`` weights.
        device: ``cpu``, ``cuda``...
    """
    loaded = load_run(run_dir, which, device)
    kind = loaded.task["kind"]
    if kind not in KINDS:
        raise ValueError(f"rnnkit.load knows {', '.join(KINDS)} runs, not {kind}")
    return KINDS[kind](run_dir, loaded, which, device)
