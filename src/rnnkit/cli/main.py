"""``rnnkit``: the command line, a thin face over the library, generated from its registries.

    rnnkit train lm --data shakespeare --out runs/shk --time-budget 5m
    rnnkit sample runs/shk --prime "ROMEO:" --temperature 0.8
    rnnkit evaluate runs/shk --split test --json
    rnnkit plot runs/shk
    rnnkit datasets

``train TASK`` exists for every registered task (``rnnkit.tasks``), with flags generated from
its config dataclasses. The run verbs (``evaluate``, ``predict``, ``sample``, ``backtest``) read
the run's ``config.json`` to learn its task, then take that task's own flags, generated from the
verb's options dataclass; every verb is one library call (``TaskSpec.verbs``) that a Python
user can make too.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import logging
import sys
from pathlib import Path

from rnnkit.cli.dataclass_args import add_dataclass_flags, build_dataclass
from rnnkit.cli.train_flags import add_train_groups, build_configs, report
from rnnkit.tasks import get_task, task_names
from rnnkit.training.interrupts import exit_status

RUN_VERBS = {
    "evaluate": "metrics of a trained run on held-out data",
    "predict": "run a trained model on new input",
    "sample": "generate from a trained model",
    "backtest": "walk-forward backtest of a forecasting run's configuration (expanding window)",
    "export": "write a trained model as ONNX or TorchScript files, with export.json",
}
# verbs that are not about one run: name -> module with ``HELP``, ``add_flags(p)`` and ``run``
TOOLS: dict[str, str] = {
    "diagnose": "rnnkit.cli.diagnose",
    "bench": "rnnkit.cli.bench",
}


def _verbs(kind: str) -> dict:
    """A task's run verbs, and ``export``, which every task has (``rnnkit.export``)."""
    from rnnkit.export import ExportOptions, export_run, show_export
    from rnnkit.tasks.base import Verb

    return {**get_task(kind).verbs, "export": Verb(export_run, ExportOptions, show_export)}


def _serving(verb: str) -> list[str]:
    """The tasks that serve a run verb."""
    return [name for name in task_names() if verb in _verbs(name)]


def _add_run_verb(verbs, verb: str, kind: str | None) -> None:
    """``rnnkit VERB RUN_DIR``: with the run's task known, that task's flags; without (``-h``
    alone), the shared ones and a list of each task's."""
    help_text = RUN_VERBS[verb]
    sub = verbs.add_parser(
        verb,
        help=help_text,
        description=f"{help_text[0].upper()}{help_text[1:]}.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub.add_argument("run_dir", help="the run folder")
    sub.set_defaults(run_kind=kind)
    spec = get_task(kind) if kind is not None else None
    verb_spec = _verbs(kind).get(verb) if spec is not None else None
    if verb_spec is None or verb_spec.loads:
        sub.add_argument(
            "--checkpoint", choices=["best", "last"], default="best", help="which weights"
        )
        sub.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    if verb_spec is None or verb_spec.show is not None:
        sub.add_argument("--json", action="store_true", help="print the result as JSON")
    if verb_spec is not None and verb_spec.options is not None:
        add_dataclass_flags(sub.add_argument_group(f"{kind} runs"), verb_spec.options)
    if spec is None:
        lines = ["The flags of each task's runs (rnnkit VERB RUN_DIR -h shows them in full):"]
        for name in _serving(verb):
            flags = _option_flags(_verbs(name)[verb].options)
            lines.append(f"  {name}: {' '.join(flags) or '(none)'}")
        sub.epilog = "\n".join(lines)


def _option_flags(options: type | None) -> list[str]:
    """The flags an options dataclass adds, as ``add_dataclass_flags`` makes them."""
    if options is None:
        return []
    probe = argparse.ArgumentParser(add_help=False)
    add_dataclass_flags(probe, options)
    return [flag for action in probe._actions for flag in action.option_strings]


def _parser(kind: str | None = None) -> argparse.ArgumentParser:
    from rnnkit import __version__

    parser = argparse.ArgumentParser(
        prog="rnnkit",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"rnnkit {__version__}")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    train = verbs.add_parser("train", help="train a model").add_subparsers(
        dest="task", required=True, metavar="TASK"
    )
    for name in task_names():
        spec = get_task(name)
        sub = train.add_parser(name, help=spec.help, description=f"Train {spec.help}.")
        add_train_groups(sub, spec.configs, titles=spec.titles, from_run=spec.from_run)

    for verb in RUN_VERBS:
        serves = kind is not None and verb in _verbs(kind)
        _add_run_verb(verbs, verb, kind if serves else None)

    plot = verbs.add_parser("plot", help="draw a run's loss curve (loss.png)")
    plot.add_argument("run_dir")
    plot.add_argument("--png", default=None, help="where to write the PNG (default RUN/loss.png)")

    verbs.add_parser("datasets", help="list the named data sets")
    for name, path in TOOLS.items():
        module = importlib.import_module(path)
        module.add_flags(verbs.add_parser(name, help=module.HELP, description=module.HELP))
    return parser


def _run_kind(argv: list[str]) -> str | None:
    """For ``rnnkit VERB ... RUN_DIR ...``: the task of the first argument after the verb that
    is a run folder (so that the verb's flags can be the task's own); ``None`` otherwise."""
    words = [a for a in argv if not a.startswith("-")]
    if not words or words[0] not in RUN_VERBS:
        return None
    for word in words[1:]:
        config = Path(word) / "config.json"
        try:
            kind = json.loads(config.read_text())["task"]["kind"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        return kind if kind in task_names() else None
    return None


def _train(args, parser) -> int:
    spec = get_task(args.task)
    train_cfg, configs = build_configs(
        args, parser, spec.configs, from_run=spec.from_run, hint=spec.hint
    )
    configs = configs or dict.fromkeys(spec.configs)  # None each on --resume: the run has them
    model_cfg, data_cfg = configs.pop("model"), configs.pop("data")
    result = spec.train(model_cfg, data_cfg, train_cfg, **configs)
    if result.rank:  # under torchrun rank 0 alone reports
        return exit_status(result.signal) if result.interrupted else 0
    tail = spec.summary(result) if spec.summary is not None else ""
    status = report(result, best=spec.best, tail=tail)
    if spec.epilogue is not None:
        print(spec.epilogue(result))
    return status


def _run_verb(args, parser) -> int:
    """A run verb: the run's task's library call, with the verb's options from the flags."""
    from rnnkit.training.runs import read_run_config

    # the kind _run_kind read to build this parser; read here only to word the error
    kind = (
        args.run_kind or read_run_config(args.run_dir, task_names(), "recognised")["task"]["kind"]
    )
    verb = _verbs(kind).get(args.verb)
    if verb is None:
        serving = ", ".join(_serving(args.verb))
        raise ValueError(f"a {kind} run has no '{args.verb}' (it serves {serving} runs)")
    kwargs = {}
    if verb.options is not None:
        options = build_dataclass(verb.options, args, parser)
        kwargs = {
            f.name: getattr(options, f.name)
            for f in dataclasses.fields(options)
            if f.name not in verb.show_only
        }
    else:
        options = None
    if verb.loads:
        kwargs.update(which=args.checkpoint, device=args.device)
    if verb.stream:
        kwargs["write"] = _write
    result = verb.run(args.run_dir, **kwargs)
    if getattr(args, "json", False):
        rows = result if isinstance(result, list) else [result]
        print("\n".join(json.dumps(r) for r in rows))
    elif verb.show is not None:
        print(verb.show(result, options))
    return 0


def _write(piece: str) -> None:
    sys.stdout.write(piece)
    sys.stdout.flush()


def _plot(args, parser) -> int:
    from rnnkit.training.plot import plot_run

    print(plot_run(args.run_dir, args.png))
    return 0


def _datasets(args, parser) -> int:
    from rnnkit.datasets import describe_datasets

    print(describe_datasets())
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = _parser(_run_kind(argv))
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
    from rnnkit.training.distributed import PeerError
    from rnnkit.training.run_lock import RunInUseError

    try:
        return handler(args, parser)
    except BrokenPipeError:  # output piped into `head` and the like: stop quietly
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except PeerError:  # rank 0 failed and says why; the other ranks end quietly
        return 2
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
