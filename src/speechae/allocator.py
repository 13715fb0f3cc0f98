"""Process-wide tuning of glibc's ``malloc`` for the network's allocation pattern.

Every chunk of windows allocates convolution outputs of a few MB. glibc serves blocks above its
mmap threshold (128 kB at first, then adjusted on the fly) with fresh ``mmap`` calls and returns
them to the system when they are freed, and it returns free memory at the top of the heap
beyond its trim threshold, so chunk after chunk touches new pages again: on this project's
2-core machine the shared corpus's run spent 0.5 of its 5.2 CPU seconds in page faults.
:func:`retain_freed_memory` fixes both thresholds once, so that blocks of up to
``MMAP_THRESHOLD`` come from the heap and freed ones are reused; the heap keeps at most
``TRIM_THRESHOLD`` bytes of free memory at its top. The thresholds stay moderate because glibc
cannot always reuse a freed aligned block for the next one of the same size, so the heap may
grow by a few such blocks before it settles. Between the stages of a long recording, whose
working sets differ (resampling segments, spectrogram chunks, the network's layers),
:func:`return_free_memory` gives back what the last stage left free inside the heap, so it never
adds to the next stage's peak.

It changes nothing where the C library is not glibc, or where malloc was already tuned through
``MALLOC_*_`` variables or ``GLIBC_TUNABLES`` (Dask's ``LocalCluster`` sets one, for example).

Example:
    >>> retain_freed_memory() in (True, False)
    True
"""

from __future__ import annotations

import ctypes
import functools
import os
import platform

__all__ = ["MMAP_THRESHOLD", "TRIM_THRESHOLD", "retain_freed_memory", "return_free_memory"]

#: Blocks up to this size come from the heap and are reused after ``free``.
MMAP_THRESHOLD = 32 * 2**20
#: Free memory at the top of the heap beyond this is returned to the system.
TRIM_THRESHOLD = 64 * 2**20

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def _user_tuned() -> bool:
    tunables = os.environ.get("GLIBC_TUNABLES", "")
    return "glibc.malloc." in tunables or any(name.startswith("MALLOC_") for name in os.environ)


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    """The C library, where it is glibc on Linux."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


@functools.cache
def retain_freed_memory() -> bool:
    """Fix glibc's mmap and trim thresholds, once per process; ``True`` if they were set."""
    libc = _glibc()
    if libc is None or _user_tuned():
        return False
    return bool(
        libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) and libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )


def return_free_memory() -> bool:
    """Give the free memory of every malloc arena back to the system; ``True`` if some was.

    Costs a few milliseconds and the page faults of touching that memory again, so it is for the
    boundaries between the stages of a long recording, not for every chunk.
    """
    libc = _glibc()
    return bool(libc is not None and libc.malloc_trim(0))
