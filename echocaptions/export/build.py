"""A finished build as the exporters read it: checked once, then streamed in batches.

``open_build`` refuses a folder that is not a finished build (no
``stats.json``, no ``data/`` shards, or shards that disagree with the row
counts ``stats.json`` records, as while a rebuild is swapping files in) before
any work, naming what the folder holds. ``Build.rows`` reads the default
config's Parquet shards of one split with ``iter_batches``, so memory holds
one batch of images whatever the size of the build.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from echocaptions.captions import strategies

BATCH_ROWS = 64
SHARD_RE = re.compile(r"(?P<split>\w+)-(?P<index>\d{5})-of-(?P<total>\d{5})\.parquet")
EVAL_PREFIX = "eval_"


class ExportError(ValueError):
    """Bad input to an export: the message names what is wrong and what exists."""


@dataclass
class Build:
    """A finished build folder: its stats, its shards per split and a fingerprint of both."""

    path: Path
    stats: dict[str, Any]
    shards: dict[str, list[Path]]
    fingerprint: str
    rows_per_split: dict[str, int] = field(default_factory=dict)

    @property
    def splits(self) -> list[str]:
        return list(self.shards)

    def rows(self, split: str, columns: Sequence[str], batch_rows: int = BATCH_ROWS) -> Iterator[dict[str, Any]]:
        """Rows of one split in build order, ``batch_rows`` at a time from each shard."""
        for shard in self.shards[split]:
            for batch in pq.ParquetFile(shard).iter_batches(batch_size=batch_rows, columns=list(columns)):
                yield from batch.to_pylist()

    def caption_sources(self) -> dict[str, int]:
        """Caption candidates of the build by source (report, template, llm)."""
        return {k: int(v) for k, v in (self.stats.get("caption_candidates") or {}).items() if v}


def listing(folder: Path, limit: int = 8) -> str:
    """The entries of ``folder`` for an error message (folders end in ``/``)."""
    names = sorted(p.name + ("/" if p.is_dir() else "") for p in folder.iterdir())
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return (", ".join(names[:limit]) + more) or "nothing"


def open_build(folder: Path) -> Build:
    """Check that ``folder`` is a finished build and describe it; raise ExportError otherwise."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ExportError(f"{folder}: no such folder; pass the output folder of `echocaptions build`")
    stats_path = folder / "stats.json"
    if not stats_path.is_file():
        raise ExportError(
            f"{folder} is not a finished build: no stats.json (it holds: {listing(folder)}); "
            "run `echocaptions build --out FOLDER` to the end first"
        )
    try:
        stats = json.loads(stats_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ExportError(f"{stats_path}: not valid JSON ({exc}); rerun the build") from exc
    expected = stats.get("splits")
    if not isinstance(expected, dict) or not expected:
        raise ExportError(f"{stats_path}: no 'splits' table; this is not a stats.json written by a build")
    data = folder / "data"
    found: dict[str, dict[int, tuple[int, Path]]] = {}
    for path in sorted(data.glob("*.parquet")) if data.is_dir() else []:
        match = SHARD_RE.fullmatch(path.name)
        if match:
            found.setdefault(match["split"], {})[int(match["index"])] = (int(match["total"]), path)
    if not found:
        raise ExportError(
            f"{folder} is not a finished build: no data/{{split}}-NNNNN-of-NNNNN.parquet shards "
            f"(it holds: {listing(folder)})"
        )
    shards: dict[str, list[Path]] = {}
    rows: dict[str, int] = {}
    for split in sorted(set(found) | set(expected)):
        have = found.get(split, {})
        totals = {total for total, _ in have.values()}
        count = sum(pq.ParquetFile(p).metadata.num_rows for _, p in have.values())
        complete = len(totals) == 1 and sorted(have) == list(range(totals.pop()))
        if split not in expected or not complete or count != expected[split]:
            raise ExportError(
                f"{folder} is not a finished build: split {split!r} has {len(have)} shard(s) with {count} rows "
                f"in data/, stats.json says {expected.get(split, 'no such split')} rows"
                f"{'' if complete else ' (shards missing from the NNNNN-of-NNNNN sequence)'}; "
                "a build may still be running or was stopped: rerun it to the end"
            )
        shards[split] = [have[i][1] for i in sorted(have)]
        rows[split] = count
    digest = hashlib.sha256(stats_path.read_bytes())
    for split in shards:
        for path in shards[split]:
            digest.update(f"\0{path.name}\0{path.stat().st_size}".encode())
    return Build(folder, stats, shards, digest.hexdigest(), rows)


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
