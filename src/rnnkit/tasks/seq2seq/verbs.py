"""The seq2seq task's run verbs as the command line calls them: options and printed form."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from rnnkit.tasks.seq2seq import run


@dataclass(kw_only=True)
class DecodingOptions:
    beam: int = 1
    """Beam width (1: greedy decoding)."""
    length_penalty: float = 1.0
    """Beam scores are log-probabilities / length ** this."""


@dataclass(kw_only=True)
class EvaluateOptions(DecodingOptions):
    """What ``rnnkit evaluate`` scores for a seq2seq run."""

    data: str | None = None
    """Score these source<TAB>target pairs instead of the run's own split."""
    split: Literal["train", "val", "test"] = "test"
    """Which part of the run's own pairs to score, cut as in training."""
    heatmap: str | None = None
    """Write the attention heat map of one example to this PNG."""
    example: int = 0
    """Which scored source the heat map shows (its index)."""


def show_evaluate(m: dict, options: EvaluateOptions) -> str:
    lines = [
        f"{'data':<24}{m['data']}",
        f"{'checkpoint':<24}{m['checkpoint']}",
        f"{'sequences scored':<24}{m['sequences']:,}   (beam {m['beam']})",
        f"{'':<24}{'loss':>10}{'token err':>12}{'seq err':>10}",
        f"{'model':<24}{m['loss']:>10.4f}{100 * m['token_error_rate']:>11.2f}%"
        f"{100 * m['sequence_error_rate']:>9.2f}%",
        f"{'most frequent target':<24}{'':>10}{100 * m['baseline_token_error_rate']:>11.2f}%"
        f"{100 * m['baseline_sequence_error_rate']:>9.2f}%",
    ]
    if "heatmap" in m:
        ex = m["example"]
        lines.append(f"attention of {ex['source']!r} -> {ex['output']!r}: {m['heatmap']}")
    return "\n".join(lines)


@dataclass(kw_only=True)
class PredictOptions(DecodingOptions):
    """What ``rnnkit predict`` translates."""

    input: str | None = None
    """Read sources from this file, one per line (default: standard input)."""


def predict(
    run_dir: str | Path,
    *,
    input: str | None = None,
    beam: int = 1,
    length_penalty: float = 1.0,
    which="best",
    device="cpu",
) -> list[dict]:
    """Translate every non-empty line of ``input`` (a file; ``None``: standard input)."""
    if input is None:
        lines = sys.stdin.read().splitlines()
    else:
        try:
            with open(input, encoding="utf-8") as f:
                lines = f.read().splitlines()
        except UnicodeDecodeError as e:
            raise ValueError(f"--input {input}: not UTF-8 text (byte {e.start})") from None
    lines = [line.strip() for line in lines if line.strip()]
    if not lines:
        raise ValueError("nothing to predict: no non-empty input lines")
    outputs = run.predict(
        run_dir, lines, beam=beam, length_penalty=length_penalty, which=which, device=device
    )
    return [{"source": s, "output": o} for s, o in zip(lines, outputs)]


def show_predict(records: list[dict], options: PredictOptions) -> str:
    return "\n".join(f"{r['source']}\t{r['output']}" for r in records)
