"""Atomic file writes: a reader sees the old file or the complete new one, never a partial file.

The file gets the mode a plain ``open`` would give it (0666 less the umask, like the files transformers writes beside
ours), not the 0600 of the temporary file it starts as: colleagues, a Space or a container running as another user
read results, figures and checkpoints as they read everything else in the folder.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO


@contextmanager
def atomic_open(path: str | Path, mode: str = "w") -> Iterator[IO]:
    """Open a temporary file beside `path` and move it onto `path` only when the block finishes without error.

    Example:
        >>> import tempfile
        >>> target = Path(tempfile.mkdtemp()) / "result.json"
        >>> with atomic_open(target) as file:
        ...     _ = file.write("{}")
        >>> target.read_text()
        '{}'
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open writes whole files: mode must be 'w' or 'wb', got {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    try:
        with os.fdopen(handle, mode) as file:
            yield file
            file.flush()
            os.fchmod(file.fileno(), 0o666 & ~current_umask())
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def check_writable_directory(directory: Path, option: str, purpose: str) -> None:
    """Raise a ValueError now, before any work, when `directory` (the value of `option`, where `purpose` goes)
    could not be created or written; nothing is created.

    Example:
        >>> check_writable_directory(Path(tempfile.mkdtemp()) / "new" / "results", "--out", "the results")
    """
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise ValueError(f"{option} {str(directory)!r} is a file, not a directory; give a directory for {purpose}")
    existing = next(parent for parent in (directory, *directory.parents) if parent.exists())
    if not existing.is_dir():
        raise ValueError(f"{option} {str(directory)!r}: {str(existing)!r} is a file, so the directory cannot be "
                         "created")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"{option} {str(directory)!r}: {str(existing)!r} is not writable")


def current_umask() -> int:
    """The process's umask, read without changing it where the system tells it (Linux), since setting it to read it
    would, for an instant, apply to files other threads create."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        status = ""
    for line in status.splitlines():
        if line.startswith("Umask:"):
            return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write `text` to `path` atomically."""
    with atomic_open(path, "w") as file:
        file.write(text)
