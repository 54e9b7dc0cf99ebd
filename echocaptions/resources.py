"""Find the bundled templates/, prompts/, recipes/ and zero-shot prompt folders.

In a source checkout they are the top-level folders of the repository; in an
installed wheel they are copied to ``echocaptions/_bundled/`` by setup.py.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent
# kind -> its folder in a source checkout (zero-shot prompt sets live beside train_min's code)
SOURCES = {"templates": "templates", "prompts": "prompts", "recipes": "recipes", "zeroshot": "train_min/zeroshot"}
KINDS = tuple(SOURCES)


def bundled_dir(kind: str) -> Path:
    """Folder of bundled ``kind`` files (``templates``, ``prompts``, ``recipes`` or ``zeroshot``)."""
    if kind not in KINDS:
        raise ValueError(f"unknown resource kind {kind!r}; expected one of {KINDS}")
    for candidate in (_PACKAGE / "_bundled" / kind, _PACKAGE.parent / SOURCES[kind]):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(
        f"bundled folder {kind!r} not found next to the package ({_PACKAGE}); "
        "reinstall echocaptions with `pip install .` from a full checkout"
    )
