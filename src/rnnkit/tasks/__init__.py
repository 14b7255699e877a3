"""Tasks: what a language model, classifier, forecaster or seq2seq model needs beyond the
architecture (data, loss, metrics, prediction), one package each, registered here once.

Each package's ``SPEC`` (a ``rnnkit.tasks.base.TaskSpec``) says what the task is made of; the
CLI's ``train``, ``evaluate``, ``predict`` and ``sample`` verbs are generated from them. A task
package is imported only when it is used.
"""

from __future__ import annotations

import importlib

# -- the registered tasks: name -> the package whose SPEC describes it, one line each ----------
_PACKAGES: dict[str, str] = {
    "lm": "rnnkit.tasks.lm",
    "classify": "rnnkit.tasks.classify",
    "tag": "rnnkit.tasks.classify:TAG_SPEC",
    "forecast": "rnnkit.tasks.forecast",
    "seq2seq": "rnnkit.tasks.seq2seq",
    "generate": "rnnkit.tasks.generate",
}
_LOADED: dict = {}


def task_names() -> tuple[str, ...]:
    """The registered task names, in registration order."""
    return tuple(_PACKAGES)


def get_task(name: str):
    """The ``TaskSpec`` of a registered task (its package is imported on first use)."""
    if name not in _PACKAGES:
        raise ValueError(f"no task {name!r}; the tasks are {', '.join(_PACKAGES)}")
    if name not in _LOADED:
        module, _, attr = _PACKAGES[name].partition(":")
        _LOADED[name] = getattr(importlib.import_module(module), attr or "SPEC")
    return _LOADED[name]


def register_task(name: str, where: str) -> None:
    """Register a task for the CLI and ``load_run``: the package (``"package"`` or
    ``"package:ATTR"``) whose ``SPEC`` describes it, imported when first used."""
    _PACKAGES[name] = where
    _LOADED.pop(name, None)
