"""One meaning per flag name across the whole command line.

Every parser the CLI can build is walked (each ``train TASK``, each run verb as each task serves
it, the tools); a flag spelt the same way must read the same kind of value everywhere.
"""

from __future__ import annotations

import argparse
from collections import defaultdict

from rnnkit.cli import main as cli


def _parsers():
    """(path, parser) for every (sub)command, with the run verbs built for every task."""
    seen = []

    def walk(parser, path):
        seen.append((path, parser))
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(sub, (*path, name))

    walk(cli._parser(), ())
    for kind in cli.task_names():
        walk(cli._parser(kind), ())  # the run verbs with this task's flags
    return seen


def _signature(action: argparse.Action) -> tuple:
    kind = "str" if action.type is None else getattr(action.type, "__name__", str(action.type))
    choices = tuple(action.choices) if action.choices else None
    return (type(action).__name__, kind, choices, action.nargs)


def test_a_flag_reads_the_same_kind_of_value_everywhere():
    uses = defaultdict(set)
    for _, parser in _parsers():
        for action in parser._actions:
            for flag in action.option_strings:
                uses[flag].add(_signature(action))
    assert len(uses) > 50  # the walk reached the task flags
    # the exceptions, same meaning: bench memory's --lr also takes one rate per cell; --format
    # is the form of what a verb writes (predict's table, export's model files)
    mixed = {
        flag: sigs
        for flag, sigs in uses.items()
        if len(sigs) > 1 and flag not in ("--lr", "--format")
    }
    assert not mixed, mixed


def test_flags_that_once_meant_two_things_mean_one():
    parsers = _parsers()
    where = defaultdict(set)
    for path, parser in parsers:
        for action in parser._actions:
            for flag in action.option_strings:
                where[flag].add(path[0] if path else "")
    # the folder a verb writes (the run; the exported files); a picture is --png or --plot
    assert where["--out"] <= {"train", "export"}
    # --checkpoint picks best or last weights everywhere (diagnose takes the run as --run)
    for path, parser in parsers:
        for action in parser._actions:
            if "--checkpoint" in action.option_strings:
                assert tuple(action.choices) == ("best", "last"), path
    assert "--input" not in {f for p, parser in parsers if p[:2] == ("diagnose", "unroll")
                             for a in parser._actions for f in a.option_strings}  # fmt: skip
