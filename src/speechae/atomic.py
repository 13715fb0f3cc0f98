"""Files that appear complete or not at all: write under a hidden temporary name, then rename.

Example:
    >>> import tempfile
    >>> target = Path(tempfile.mkdtemp()) / "out" / "note.txt"
    >>> with atomic_path(target) as partial:
    ...     _ = partial.write_text("done")
    >>> target.read_text(), [p.name for p in target.parent.iterdir()]
    ('done', ['note.txt'])
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from speechae.errors import ParameterError

__all__ = ["atomic_path", "check_target", "partial_path"]


def check_target(target: str | os.PathLike[str]) -> None:
    """Refuse, before any work, a file that cannot be written; create its missing folders.

    Example:
        >>> import tempfile
        >>> check_target(Path(tempfile.mkdtemp()) / "new" / "features.csv")  # the folder is made

    Raises:
        ParameterError: ``target`` is a folder, a part of its folder's path is a file, or the
            folder cannot be created.
    """
    target = Path(target)
    if target.is_dir():
        raise ParameterError(f"{target}: is a folder; give the path of the file to write")
    blocking = next((parent for parent in target.parents if parent.exists()), None)
    if blocking is not None and not blocking.is_dir():
        raise ParameterError(f"{target}: {blocking} is a file, not a folder")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ParameterError(f"{target}: its folder cannot be created ({error.strerror or error})") from None


def partial_path(target: str | os.PathLike[str]) -> Path:
    """A hidden temporary name beside ``target``, unique to this process and call."""
    target = Path(target)
    return target.with_name(f".{target.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.partial")


@contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``target``, on error it is removed.

    Missing parent folders are created.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = partial_path(target)
    try:
        yield partial
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
