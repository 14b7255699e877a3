"""One trainer per run folder: an advisory lock on ``RUN/.lock``, held while the run lasts.

The lock is ``fcntl.flock`` on an open file, so the kernel drops it when the process ends, however
it ends: a trainer killed with ``kill -9`` leaves a ``.lock`` file that blocks nobody. The file
holds the holder's pid and host, for the message that turns a second trainer away.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

LOCK = ".lock"


class RunInUseError(RuntimeError):
    """Another live trainer holds the run folder."""


class RunLock:
    """Hold ``run_dir/.lock`` exclusively; ``RunInUseError`` names the holder if it is taken.

    On platforms without ``fcntl`` (Windows) it does nothing.
    """

    def __init__(self, run_dir: str | Path) -> None:
        self.path = Path(run_dir) / LOCK
        self._fd: int | None = None

    def acquire(self) -> None:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows
            return
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_holder(fd)
                os.close(fd)
                raise RunInUseError(
                    f"{self.path.parent} is in use by another trainer ({holder}); wait for it "
                    f"to end or stop it, or choose another --out"
                ) from None
            # the previous holder may have removed the file between our open and our lock:
            # then we hold a lock on a file nobody else will open; take the new file instead
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname()}).encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        # unlink while still holding it, so nobody can lock the file we are about to drop
        self.path.unlink(missing_ok=True)
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _read_holder(fd: int) -> str:
    try:
        info = json.loads(os.pread(fd, 4096, 0).decode())
        return f"pid {info['pid']} on {info['host']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "its pid is not recorded yet"
