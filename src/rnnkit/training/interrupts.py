"""Stop requests: SIGINT, SIGTERM and SIGHUP turned into a flag the training loop reads.

A signal that raised ``KeyboardInterrupt`` in the middle of a step would leave the weights of one
step beside the carried state and random state of the next, and a second one would cut the
checkpoint write short. So while a run lasts these signals only set a flag; the loop finishes
the step it is on, saves a checkpoint at that step boundary and returns. Timeouts, ``docker
stop``, SLURM and torchrun send SIGTERM; a closed terminal sends SIGHUP.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from types import FrameType

STOP_SIGNALS: tuple[signal.Signals, ...] = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)


class StopRequest:
    """A flag set by a stop signal while the ``with`` block lasts.

    The handlers are installed only in the main thread (Python delivers signals there only) and
    the previous handlers come back on exit. The handler writes with ``os.write``: ``print``
    from a handler can hit the stream mid-write in the main thread and raise.

    Example::

        with StopRequest() as stop:
            while not stop.requested:
                step()
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        """The first signal received (``None``: none, or a stop asked for in code)."""
        self.requested = False
        self._previous: dict[int, object] = {}

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, previous in self._previous.items():
            # None: a handler set from C that Python cannot name; the default is the safe bet
            signal.signal(sig, signal.SIG_DFL if previous is None else previous)
        self._previous.clear()

    def request(self, signum: int | None = None) -> None:
        """Ask the loop to stop at the next step boundary (what a signal does)."""
        if not self.requested:
            self.requested, self.signum = True, signum

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        first = not self.requested
        self.request(signum)
        name = signal.Signals(signum).name
        text = (
            f"\n{name}: stopping after this step; a checkpoint will be saved\n"
            if first
            else f"\n{name}: already stopping; the checkpoint is being saved, then the run ends\n"
        )
        # stderr may be closed (a detached process): the flag is what matters
        with contextlib.suppress(OSError):
            os.write(2, text.encode())


def exit_status(signum: int | None) -> int:
    """The shell's exit status for a run stopped by ``signum``: 128 + its number (130 for
    SIGINT, 143 for SIGTERM); 130 when the stop came from code (a callback)."""
    return 128 + (signum if signum is not None else signal.SIGINT)
