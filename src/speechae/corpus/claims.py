"""What a corpus run claims on disk: the files it writes, kept apart from its inputs, and a lock.

A run writes its output, the lists beside it, its store and (for a shard) its run description;
:func:`written_paths` names them and :func:`check_apart` refuses a run where one of them is also
an input (an audio file, list file or manifest), before anything is read or written.
:class:`OutputLock` holds ``OUT.lock`` for the whole run, so that a second run on the same output
stops at once with one sentence, or waits for the first when asked to.

Example:
    >>> import tempfile
    >>> out = Path(tempfile.mkdtemp()) / "features.csv"
    >>> [path.name for path in written_paths(out)][:3]
    ['features.csv', 'features.csv.errors.csv', 'features.csv.dropped.csv']
    >>> with OutputLock(out):
    ...     out.with_name("features.csv.lock").exists()
    True
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterable
from pathlib import Path

from speechae.corpus.shards import run_description_path
from speechae.corpus.sidecars import SIDECARS, sidecar_path
from speechae.errors import OutputInUseError, ParameterError
from speechae.store import store_path
from speechae.writers import table_paths

__all__ = ["OutputLock", "check_apart", "written_paths"]


def written_paths(output: str | os.PathLike[str], fmt: str | None = None) -> list[Path]:
    """Every file a corpus run into ``output`` (in ``fmt``) may write or replace."""
    output = Path(output)
    store = store_path(output)
    return [
        *table_paths(output, fmt),
        *(sidecar_path(output, kind) for kind in SIDECARS),
        store,
        store.with_name(f"{store.name}-journal"),
        store.with_name(f"{store.name}-wal"),
        run_description_path(output),
        lock_path(output),
    ]


def lock_path(output: str | os.PathLike[str]) -> Path:
    """``OUT.lock``, which a run holds while it writes ``output``."""
    output = Path(output)
    return output.with_name(f"{output.name}.lock")


def check_apart(written: Iterable[str | os.PathLike[str]], inputs: Iterable[str | os.PathLike[str]]) -> None:
    """Refuse a run that would write (or replace) one of its own inputs.

    Paths are compared as files where both exist (links and hard links included), else by their
    absolute names.

    Raises:
        ParameterError: naming the input and what the run would write there.
    """
    targets = {_identity(Path(path)): Path(path) for path in written}
    for given in inputs:
        target = targets.get(_identity(Path(given)))
        if target is not None:
            raise ParameterError(
                f"{target}: this run would write it, but it is also an input ({given}); "
                "choose another output path"
            )


def _identity(path: Path) -> tuple:
    """What tells two paths apart: the file itself when it exists, else its absolute name."""
    try:
        status = path.stat()
    except OSError:
        return ("name", os.path.normcase(os.path.abspath(path)))
    return ("file", status.st_dev, status.st_ino)


class OutputLock:
    """``OUT.lock`` held for a run: a second run on the same output stops, or waits with ``wait``.

    The lock is the operating system's (``flock``; ``msvcrt.locking`` on Windows), so it goes when
    its process ends however it ends; the file, which names the holder, is removed on release.

    Raises:
        OutputInUseError: (on entering, without ``wait``) another run holds the lock.
    """

    def __init__(self, output: str | os.PathLike[str], *, wait: bool = False) -> None:
        self.output, self.path, self.wait = Path(output), lock_path(output), wait
        self.handle: int | None = None

    def __enter__(self) -> OutputLock:
        while self.handle is None:
            try:
                handle = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as error:
                raise ParameterError(
                    f"{self.output}: its folder cannot take the run's files ({error.strerror or error})"
                ) from None
            try:
                if not _lock(handle, block=False):
                    if not self.wait:
                        raise OutputInUseError(
                            f"{self.output}: another speechae run ({_holder(self.path)}) is writing "
                            "this output; let it finish, or wait for it (--wait, wait=True)"
                        )
                    _lock(handle, block=True)
                if _same_file(handle, self.path):  # not removed by a holder that just finished
                    os.ftruncate(handle, 0)
                    os.write(handle, f"process {os.getpid()} on {socket.gethostname()}\n".encode())
                    self.handle = handle
            finally:
                if self.handle is None:
                    os.close(handle)
            if self.handle is None:
                time.sleep(0.01)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.handle is not None:
            self.path.unlink(missing_ok=True)
            os.close(self.handle)  # releases the lock
            self.handle = None


def _lock(handle: int, *, block: bool) -> bool:
    """Lock the open file ``handle``; False if another process holds it and ``block`` is False."""
    try:
        import fcntl
    except ImportError:  # Windows
        import msvcrt

        try:
            msvcrt.locking(handle, msvcrt.LK_LOCK if block else msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | (0 if block else fcntl.LOCK_NB))
    except BlockingIOError:
        return False
    return True


def _same_file(handle: int, path: Path) -> bool:
    try:
        return os.path.samestat(os.fstat(handle), path.stat())
    except OSError:
        return False


def _holder(path: Path) -> str:
    try:
        return path.read_text().strip() or "starting"
    except (OSError, UnicodeDecodeError):
        return "unknown process"
