"""What the exports check on a build: the splits and the caption strategy asked for.

A build is opened by :func:`echocaptions.publish.build.open_build`, as every
reader opens it; :func:`open_build` here is that function raising
:class:`ExportError`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from echocaptions.captions import strategies
from echocaptions.publish import build as published
from echocaptions.publish.build import Build, BuildFolderError

__all__ = ["Build", "ExportError", "check_strategy", "open_build", "pick_splits"]


class ExportError(BuildFolderError):
    """Bad input to an export: the message names what is wrong and what exists."""


def open_build(folder: str | Path) -> Build:
    """The finished build at ``folder`` (see :func:`echocaptions.publish.build.open_build`); ExportError otherwise."""
    return published.open_build(folder, error=ExportError)


def pick_splits(
    build: Build, wanted: Sequence[str] | None, is_default: Callable[[str], bool], default_text: str
) -> list[str]:
    """The splits to export: the named ones (each must exist) or the build's splits ``is_default`` picks."""
    if wanted:
        missing = [s for s in wanted if s not in build.shards]
        if missing:
            raise ExportError(
                f"--split {','.join(wanted)}: the build at {build.path} has no split {', '.join(map(repr, missing))}; "
                f"its splits: {', '.join(f'{s} ({n} rows)' for s, n in build.rows_per_split.items())}"
            )
        return list(dict.fromkeys(wanted))
    chosen = [s for s in build.shards if is_default(s)]
    if not chosen:
        raise ExportError(
            f"the build at {build.path} has none of the splits exported by default ({default_text}); "
            f"its splits: {', '.join(build.shards)}; name them with --split"
        )
    return chosen


def check_strategy(build: Build, strategy: str | None) -> str:
    """A strategy this build has captions for; otherwise an error listing the ones it has."""
    have = build.caption_sources()
    usable = [
        s for s in strategies.STRATEGIES
        if any(src in have for src in strategies.sources_of(s)) and (s not in strategies.NEEDS_LLM or "llm" in have)
    ]
    if strategy is None:
        raise ExportError(f"--strategy is required; this build supports: {', '.join(usable)}")
    if strategy not in strategies.STRATEGIES:
        raise ExportError(
            f"--strategy {strategy}: unknown caption strategy; this build supports: {', '.join(usable)} "
            f"(all strategies: {', '.join(strategies.STRATEGIES)})"
        )
    if strategy not in usable:
        sources = ", ".join(f"{k} ({v})" for k, v in sorted(have.items())) or "none"
        need = " and ".join(strategies.sources_of(strategy)) if strategy not in strategies.NEEDS_LLM else "llm"
        raise ExportError(
            f"--strategy {strategy}: it needs {need} captions, and the build at {build.path} has captions from: "
            f"{sources}; strategies this build supports: {', '.join(usable)}"
        )
    return strategy
