"""The ``lm`` task: a character (or byte) language model, trained with truncated BPTT."""

from rnnkit.tasks.base import TaskSpec, Verb
from rnnkit.tasks.lm import run, verbs
from rnnkit.tasks.lm.task import LanguageModelTask, LMDataConfig, LMModelConfig

SPEC = TaskSpec(
    name="lm",
    help="a character (or byte) language model on text",
    configs={"model": LMModelConfig, "data": LMDataConfig},
    train=run.train_lm,
    rebuild=run.rebuild,
    verbs={
        "evaluate": Verb(run.evaluate_run, verbs.EvaluateOptions, verbs.show_evaluate),
        "sample": Verb(run.sample_run, verbs.SampleOptions, stream=True),
    },
    hint=" (a data-set name, a file, a folder or a glob)",
    best="loss (nats)",
)

__all__ = ["SPEC", "LMDataConfig", "LMModelConfig", "LanguageModelTask"]
