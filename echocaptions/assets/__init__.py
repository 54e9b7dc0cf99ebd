"""Data files the package reads: word lists and lexicons, one entry a line.

``assets/<area>/<name>.txt`` is UTF-8 text. Lines starting with ``#`` are the
header (what the list is for, where it comes from) and are skipped, as are
blank lines; every other line is one entry, its surrounding spaces stripped.
The files ship in the wheel as package data and are read with
:mod:`importlib.resources`, so an installed package finds them too.
"""

from __future__ import annotations

from importlib.resources import files


def read_entries(area: str, name: str) -> tuple[str, ...]:
    """The entries of ``assets/<area>/<name>``, in file order."""
    text = (files(__name__) / area / name).read_text(encoding="utf-8")
    return tuple(s for line in text.splitlines() if (s := line.strip()) and not s.startswith("#"))
