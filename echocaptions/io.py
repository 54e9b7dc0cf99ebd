"""Files written whole or not at all: a temporary name, then a rename.

Every output a build or a worker writes goes through :func:`atomic_write`, so a
process killed mid-write leaves either the old file or none, never half a
file. The temporary name carries the host, the process and a random part: on
a cluster a retried shard may run while the first attempt still writes on
another node, and the two must never share a temporary file. Temporary names
start with a dot and end in ``.tmp``, so a folder's leftovers are easy to tell
apart (the stage driver removes them before a stage runs).
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

TMP_SUFFIX = ".tmp"


def temporary_name(path: Path) -> Path:
    """A name beside ``path`` that no other attempt, here or on another host, uses."""
    return path.with_name(f".{path.name}.{socket.gethostname()}.{os.getpid()}.{secrets.token_hex(4)}{TMP_SUFFIX}")


def atomic_write(path: str | Path, write: Callable[[str], Any]) -> None:
    """Call ``write(tmp)`` to write a temporary file, then rename it to ``path``.

    The temporary file is removed if ``write`` fails.
    """
    path = Path(path)
    tmp = temporary_name(path)
    try:
        write(str(tmp))
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))
