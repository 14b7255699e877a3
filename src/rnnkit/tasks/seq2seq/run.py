"""A seq2seq run from start to finish: train, load, predict, evaluate. The CLI's verbs.

Each function is one call a Python user can make too, for example::

    from rnnkit.tasks.seq2seq.run import train_seq2seq, evaluate_run, predict
    train_seq2seq(
        Seq2SeqModelConfig(),
        Seq2SeqDataConfig(data="cmudict", target_level="space"),
        TrainConfig(out="runs/g2p", time_budget="45m"),
    )
    evaluate_run("runs/g2p", split="test", beam=5)
    predict("runs/g2p", ["rnnkit"])
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from rnnkit.architectures.seq2seq import Seq2Seq
from rnnkit.datasets.load import load_pairs
from rnnkit.datasets.pairs import read_pairs
from rnnkit.tasks.base import Loaded, load_run
from rnnkit.tasks.seq2seq.data import error_rates, group_references, split_by_source
from rnnkit.tasks.seq2seq.task import (
    Seq2SeqDataConfig,
    Seq2SeqModelConfig,
    Seq2SeqTask,
    build_seq2seq,
    evaluate_seq2seq,
    translate,
)
from rnnkit.text.tokens import TokenVocab, tokenize
from rnnkit.text.unknown import SYMBOL_NAMES, check_known
from rnnkit.training import runs
from rnnkit.training.config import TrainConfig
from rnnkit.training.runs import stored_config
from rnnkit.training.trainer import RunResult, Trainer, resolve_device


def train_seq2seq(
    model_cfg: Seq2SeqModelConfig | None,
    data_cfg: Seq2SeqDataConfig | None,
    train_cfg: TrainConfig,
    *,
    callbacks=(),
) -> RunResult:
    """Train (or with ``train_cfg.resume``, continue) an encoder-decoder into ``train_cfg.out``."""
    vocabs = None
    model_cfg, data_cfg, stored = runs.run_configs(
        train_cfg, "seq2seq", Seq2SeqModelConfig, Seq2SeqDataConfig, model_cfg, data_cfg
    )
    if stored is not None:
        vocabs = (
            TokenVocab.from_json(stored["source_vocab"]),
            TokenVocab.from_json(stored["target_vocab"]),
        )
    task = Seq2SeqTask(
        model_cfg,
        data_cfg,
        load_pairs(data_cfg.data),
        batch_size=train_cfg.batch_size,
        seed=train_cfg.seed,
        device=resolve_device(train_cfg.device),
        vocabs=vocabs,
    )
    return Trainer(task, train_cfg, callbacks).run()


def rebuild(task: dict) -> Loaded:
    """A seq2seq run's (untrained) model and its two vocabularies, from its stored task."""
    source_vocab = TokenVocab.from_json(task["source_vocab"])
    target_vocab = TokenVocab.from_json(task["target_vocab"])
    model = build_seq2seq(
        len(source_vocab), len(target_vocab), stored_config(Seq2SeqModelConfig, task["model"])
    )
    return Loaded(model, {"source_vocab": source_vocab, "target_vocab": target_vocab})


def load_model(
    run_dir: str | Path, which: str = "best", device: str = "cpu"
) -> tuple[Seq2Seq, TokenVocab, TokenVocab, dict]:
    """A run's model (``best`` or ``last`` weights), its vocabularies and its stored task."""
    run = load_run(run_dir, which, device, kinds=("seq2seq",))
    return run.model, run.extra["source_vocab"], run.extra["target_vocab"], run.task


MAX_SOURCE_TOKENS = 4096
"""The longest source ``predict`` decodes: the decoder attends over every source step at each
of up to ``2 * S + 10`` output steps, so a stray megabyte line would run for hours."""


def predict(
    run_dir: str | Path,
    sources: list[str],
    *,
    beam: int = 1,
    length_penalty: float = 1.0,
    which: str = "best",
    device: str = "cpu",
) -> list[str]:
    """Translate source texts with a trained run (greedy, or beam search with ``beam > 1``).

    Source symbols the run never saw read as ``<unk>``, with a warning on stderr; sources of
    which it knows nothing at all are refused (``UnknownSymbolsError``, when no source holds a
    known one).
    """
    model, source_vocab, target_vocab, task = load_model(run_dir, which, device)
    level = source_vocab.level
    pieces = [tokenize(s, level) for s in sources]
    for number, tokens in enumerate(pieces, 1):
        if len(tokens) > MAX_SOURCE_TOKENS:  # decoding would take hours: say so instead
            raise ValueError(
                f"source {number} is {len(tokens):,} {SYMBOL_NAMES[level]} long; predict reads at "
                f"most {MAX_SOURCE_TOKENS:,} a source (one sentence or word a line)"
            )
    what = "sources" if len(sources) > 1 else "the source"
    check_known(pieces, source_vocab, what, SYMBOL_NAMES[level])
    outputs, _ = translate(
        model,
        sources,
        source_vocab,
        target_vocab,
        beam=beam,
        length_penalty=length_penalty,
        batch_size=task["batch_size"],
        device=next(model.parameters()).device,
    )
    return outputs


def evaluate_run(
    run_dir: str | Path,
    *,
    data: str | None = None,
    split: str = "test",
    which: str = "best",
    device: str = "cpu",
    beam: int = 1,
    length_penalty: float = 1.0,
    heatmap: str | Path | None = None,
    example: int = 0,
) -> dict:
    """Loss, token and sequence error rates of a run on a split of its data, or on other pairs.

    With ``data`` (a pairs file), all of its pairs are scored; otherwise ``split`` of the run's
    own data, cut as in training. Beside the model, a trivial baseline is scored: answering
    every source with the most frequent training target. ``heatmap`` writes the attention
    weights of the ``example``-th scored source as a PNG.
    """
    model, source_vocab, target_vocab, task = load_model(run_dir, which, device)
    data_cfg = stored_config(Seq2SeqDataConfig, task["data"])
    splits = split_by_source(
        load_pairs(data_cfg.data),
        data_cfg.val_fraction,
        data_cfg.test_fraction,
        data_cfg.split_seed,
    )
    if data is not None:
        refs = group_references(read_pairs(data))
        scored = data
    else:
        if split not in splits:
            raise ValueError(f"--split must be train, val or test, got {split!r}")
        refs, scored = splits[split], f"{data_cfg.data} [{split}]"
    dev = next(model.parameters()).device
    metrics = evaluate_seq2seq(
        model,
        refs,
        source_vocab,
        target_vocab,
        task["batch_size"],
        dev,
        beam=beam,
        length_penalty=length_penalty,
    )
    common = Counter(t for ts in splits["train"].values() for t in ts).most_common(1)[0][0]
    level = target_vocab.level
    baseline = error_rates(
        [tokenize(common, level)] * len(refs),
        [[tokenize(r, level) for r in rs] for rs in refs.values()],
    )
    result = {
        "data": scored,
        "checkpoint": which,
        "beam": beam,
        **metrics,
        "baseline_token_error_rate": baseline["token_error_rate"],
        "baseline_sequence_error_rate": baseline["sequence_error_rate"],
    }
    if heatmap is not None:
        sources = list(refs)
        if not 0 <= example < len(sources):
            raise ValueError(f"--example must lie in [0, {len(sources)}), got {example}")
        source = sources[example]
        outputs, weights = translate(
            model, [source], source_vocab, target_vocab, beam=beam, device=dev
        )
        from rnnkit.tasks.seq2seq.attention_plot import plot_attention

        plot_attention(
            weights[0],
            tokenize(source, source_vocab.level),
            [*tokenize(outputs[0], level), "<eos>"],
            heatmap,
            title=f"{source} -> {outputs[0]}",
        )
        result["heatmap"] = str(heatmap)
        result["example"] = {"source": source, "output": outputs[0], "references": refs[source]}
    return result
