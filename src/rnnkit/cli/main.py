"""``rnnkit``: the command line, a thin face over the library.

    rnnkit train lm --data shakespeare --out runs/shk --time-budget 5m
    rnnkit sample runs/shk --prime "ROMEO:" --temperature 0.8
    rnnkit evaluate runs/shk --split test --json
    rnnkit plot runs/shk
    rnnkit datasets

Every flag comes from a config dataclass (``rnnkit.cli.dataclass_args``); every verb is one
library call. Each task has a CLI module (``TASKS``) that adds ``train <task>`` and serves the
run verbs ``evaluate``, ``predict`` and ``sample`` for its runs: those verbs read the run's
``config.json`` to learn its task and hand over to that module.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from types import ModuleType

# task kind (as stored in a run's config.json) -> the module that serves it on the command line
TASKS: dict[str, str] = {
    "lm": "rnnkit.cli.lm",
    "classify": "rnnkit.cli.classify",
    "tag": "rnnkit.cli.classify",
    "forecast": "rnnkit.cli.forecast",
    "seq2seq": "rnnkit.cli.seq2seq",
    "generate": "rnnkit.cli.generate",
}
RUN_VERBS = {
    "evaluate": "metrics of a trained run on held-out data",
    "predict": "run a trained model on new input",
    "sample": "generate from a trained model",
}
# verbs that are not about one run: name -> module with ``HELP``, ``add_flags(p)`` and ``run``
TOOLS: dict[str, str] = {
    "backtest": "rnnkit.cli.backtest",
    "diagnose": "rnnkit.cli.diagnose",
    "bench": "rnnkit.cli.bench",
}


def _task_module(kind: str) -> ModuleType:
    return importlib.import_module(TASKS[kind])


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rnnkit",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    from rnnkit import __version__

    parser.add_argument("--version", action="version", version=f"rnnkit {__version__}")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    train = verbs.add_parser("train", help="train a model").add_subparsers(
        dest="task", required=True, metavar="TASK"
    )
    for kind in TASKS:
        module = _task_module(kind)
        sub = train.add_parser(kind, help=module.HELP, description=f"Train {module.HELP}.")
        module.add_train_flags(sub)

    for verb, help_text in RUN_VERBS.items():
        sub = verbs.add_parser(
            verb,
            help=help_text,
            conflict_handler="resolve",
            description=f"{help_text[0].upper()}{help_text[1:]}. The flags a run's task takes "
            "are listed below, grouped by task.",
        )
        sub.add_argument("run_dir", help="the run folder")
        sub.add_argument("--checkpoint", choices=["best", "last"], default="best")
        sub.add_argument("--device", default="cpu", help="cpu, cuda or auto")
        if verb == "evaluate":
            sub.add_argument(
                "--data", default=None, help="score this data instead of the run's own split"
            )
            sub.add_argument("--split", default="test", choices=["train", "val", "test"])
            sub.add_argument(
                "--json", action="store_true", help="print the metrics as one JSON object"
            )
            sub.add_argument(
                "--plot",
                default=None,
                help="write the run's picture here: a classifier's confusion matrix (default "
                "RUN_DIR/confusion-SPLIT.png; 'none': no picture), a forecaster's history, "
                "forecasts and intervals (default: no picture)",
            )
        for path in dict.fromkeys(TASKS.values()):  # a module may serve several kinds
            module = importlib.import_module(path)
            add = getattr(module, f"add_{verb}_flags", None)
            if add is not None:
                kinds = "/".join(k for k, p in TASKS.items() if p == path)
                add(sub.add_argument_group(f"{kinds} runs"))

    plot = verbs.add_parser("plot", help="draw a run's loss curve (loss.png)")
    plot.add_argument("run_dir")
    plot.add_argument("--out", default=None, help="where to write the PNG")

    verbs.add_parser("datasets", help="list the named data sets")
    for name, path in TOOLS.items():
        module = importlib.import_module(path)
        module.add_flags(verbs.add_parser(name, help=module.HELP, description=module.HELP))
    return parser


def _run_verb(args, parser) -> int:
    """Hand ``evaluate``/``predict``/``sample`` to the CLI module of the run's task."""
    from rnnkit.training.runs import read_run_config

    kind = read_run_config(args.run_dir, tuple(TASKS), "recognised")["task"]["kind"]
    handler = getattr(_task_module(kind), args.verb, None)
    if handler is None:
        raise ValueError(f"a {kind} run has no '{args.verb}'; see rnnkit {args.verb} -h")
    return handler(args, parser)


def _train(args, parser) -> int:
    return _task_module(args.task).train(args, parser)


def _plot(args, parser) -> int:
    from rnnkit.training.plot import plot_run

    print(plot_run(args.run_dir, args.out))
    return 0


def _datasets(args, parser) -> int:
    from rnnkit.datasets import get_spec, list_datasets

    for name in list_datasets():
        spec = get_spec(name)
        print(f"{name:<16}{spec.description}  [{spec.licence}]")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    # say when a data set is being downloaded (once) rather than hang silently
    log = logging.getLogger("rnnkit.datasets")
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
    if args.verb == "train":
        handler = _train
    elif args.verb in RUN_VERBS:
        handler = _run_verb
    elif args.verb in TOOLS:
        handler = importlib.import_module(TOOLS[args.verb]).run
    else:
        handler = {"plot": _plot, "datasets": _datasets}[args.verb]
    from rnnkit.datasets import CorpusError, DatasetError
    from rnnkit.training.checkpoint import CheckpointError
    from rnnkit.training.run_lock import RunInUseError

    try:
        return handler(args, parser)
    except BrokenPipeError:  # output piped into `head` and the like: stop quietly
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (
        CorpusError,
        DatasetError,
        CheckpointError,
        RunInUseError,
        FileExistsError,
        FileNotFoundError,
        IsADirectoryError,  # a path that is a folder where a file belongs
        NotADirectoryError,  # a path under an existing file
        PermissionError,  # a read-only or unwritable folder
        ValueError,
        FloatingPointError,
        ImportError,
    ) as e:
        print(f"rnnkit {args.verb}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
