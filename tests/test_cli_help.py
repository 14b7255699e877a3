"""Every verb and subcommand of the command line prints its help without error."""

from __future__ import annotations

import argparse

import pytest

from rnnkit.cli import main as cli


def _subcommands(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()):
    """Every command path of ``parser``: (), ("train",), ("train", "lm"), ..., ("bench",)."""
    yield prefix
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _subcommands(sub, (*prefix, name))


def test_the_parser_has_subcommands():
    paths = set(_subcommands(cli._parser()))
    # the walk below must reach every task and the run verbs, or it proves nothing
    assert {("train", kind) for kind in cli.task_names()} <= paths
    assert {(verb,) for verb in (*cli.RUN_VERBS, *cli.TOOLS)} <= paths


@pytest.mark.parametrize("path", list(_subcommands(cli._parser())), ids=" ".join)
def test_help_prints(path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main([*path, "-h"])
    assert exit_info.value.code == 0
    assert "usage: rnnkit" in capsys.readouterr().out
