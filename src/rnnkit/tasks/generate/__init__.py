"""The ``generate`` task: one-to-many, a CSV column's category -> a sequence from another."""

from rnnkit.tasks.base import TaskSpec, Verb
from rnnkit.tasks.generate import run, verbs
from rnnkit.tasks.generate.task import GenerateDataConfig, GenerateModelConfig

SPEC = TaskSpec(
    name="generate",
    help="a one-to-many generator: a CSV column's category -> a sequence from another column",
    configs={"model": GenerateModelConfig, "data": GenerateDataConfig},
    train=run.train_generate,
    rebuild=run.rebuild,
    verbs={
        "evaluate": Verb(run.evaluate_run, verbs.EvaluateOptions, verbs.show_evaluate),
        "sample": Verb(verbs.sample, verbs.SampleOptions, verbs.show_sample),
    },
    from_run=("data", "condition_col", "target_col"),
    best="loss (nats/token)",
)

__all__ = ["SPEC", "GenerateDataConfig", "GenerateModelConfig"]
