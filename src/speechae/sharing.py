"""Torch threads that give way when other processes compete for this process's cores.

torch's OpenMP threads spin while they wait for each other. Two runs with a thread per core each
on the same cores then stall one another at every parallel step: two runs of a 10-minute file on
two cores took 35-60 s where one takes 11 s. Once :func:`share_cores` is on, the thread that runs
the network calls :func:`check` between chunks; about once a second it reads how many tasks the
system could run right now (``/proc/loadavg``) and, when that is more than its own threads, uses
only the cores the others leave (at least one), and all of them again once they are gone. With
one thread each the same two runs take 17 s. The decision needs two readings in a row, so a
moment's load does not change it.

Example:
    >>> share_cores(2)  # doctest: +SKIP
    >>> check()  # between chunks of work, in the thread that runs torch
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

__all__ = ["check", "share_cores", "stop_sharing"]

#: Seconds between two readings of the load.
INTERVAL = 1.0


class _Sharing:
    def __init__(self, cores: int, source: Path) -> None:
        self.cores, self.source = cores, source
        self.next_reading = 0.0
        self.pending: int | None = None

    def check(self) -> None:
        now = time.monotonic()
        if now < self.next_reading:
            return
        self.next_reading = now + INTERVAL
        running = _runnable(self.source)
        if running is None:
            return
        own = torch.get_num_threads()
        wanted = max(1, min(self.cores, self.cores - (running - own)))
        if wanted == self.pending and wanted != own:
            torch.set_num_threads(wanted)
        self.pending = wanted


def _runnable(source: Path) -> int | None:
    """Tasks the system could run at this moment (the fourth field of /proc/loadavg: ``2/345``)."""
    try:
        return int(source.read_text().split()[3].split("/")[0])
    except (OSError, IndexError, ValueError):
        return None


_SHARING: _Sharing | None = None


def share_cores(cores: int, *, source: str = "/proc/loadavg") -> None:
    """Let torch use up to ``cores`` threads, fewer while other processes want them too."""
    global _SHARING
    _SHARING = _Sharing(cores, Path(source))


def stop_sharing() -> None:
    """Leave torch's thread count alone again."""
    global _SHARING
    _SHARING = None


def check() -> None:
    """Adjust torch's threads to what other processes leave, at most once a second (cheap)."""
    if _SHARING is not None:
        _SHARING.check()
