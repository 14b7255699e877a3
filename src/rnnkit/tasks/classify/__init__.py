"""The ``classify`` and ``tag`` tasks: one label per sequence, or one per step."""

from dataclasses import replace

from rnnkit.audio import AudioConfig
from rnnkit.tasks.base import TaskSpec, Verb
from rnnkit.tasks.classify import run, verbs
from rnnkit.tasks.classify.task import ClassifyDataConfig, ClassifyModelConfig
from rnnkit.tasks.classify.transfer import TransferConfig


def _accuracy(result) -> str:
    val = result.last_val
    return f"; last validation accuracy {val['accuracy']:.4f}" if "accuracy" in val else ""


SPEC = TaskSpec(
    name="classify",
    help="a sequence classifier (text, numbers, audio); `train tag` labels every step",
    configs={
        "model": ClassifyModelConfig,
        "data": ClassifyDataConfig,
        "audio": AudioConfig,
        "transfer": TransferConfig,
    },
    train=run.train_classify,
    rebuild=run.rebuild,
    verbs={
        "evaluate": Verb(run.evaluate_run, verbs.EvaluateOptions, verbs.show_evaluate),
        "predict": Verb(verbs.predict, verbs.PredictOptions, verbs.show_predict),
    },
    summary=_accuracy,
    hint=" (a labelled file, a folder of WAVs, or a data set)",
    best="accuracy",
    titles={
        "audio": "audio (a folder of CLASS/*.wav)",
        "transfer": "transfer (from a language model; ULMFiT fine-tuning)",
    },
)
TAG_SPEC = replace(
    SPEC,
    name="tag",
    help="a sequence tagger: one label per step (tokens or numbers)",
    train=run.train_tag,
)

__all__ = ["SPEC", "TAG_SPEC", "ClassifyDataConfig", "ClassifyModelConfig"]
