"""A finished build folder as every reader opens it: checked once, then read lazily.

``echocaptions build --out OUT`` writes (see :mod:`echocaptions.publish.folder`)::

    OUT/README.md                                  the dataset card
    OUT/stats.json                                 counts of the build, written last
    OUT/diversity.json                             diversity tables (optional)
    OUT/rejects.jsonl                              one line per rejected item (optional)
    OUT/data/{split}-NNNNN-of-NNNNN.parquet        the default config
    OUT/strategies/{name}/{split}-NNNNN-of-NNNNN.parquet  one config per caption strategy

:func:`open_build` is the one way to open it: it refuses a folder that is not a
finished build (no ``stats.json``, no ``data/`` shards, or shards that disagree
with the row counts ``stats.json`` records, as while a rebuild is swapping files
in) before any work, with a message naming the folder, what it lacks or holds,
and the command that fixes it. The report, the exports, the CLI and train_min
read the folder only through the :class:`Build` it returns, so none of them
parses the layout itself.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from echocaptions.curation.splits import EVAL_PREFIX
from echocaptions.publish.folder import CARD, DATA_DIR, DIVERSITY, REJECTS, STATS, WORK_DIR
from echocaptions.publish.parquet import SHARD_RE
from echocaptions.publish.strategy_configs import FOLDER as STRATEGIES_DIR

BATCH_ROWS = 64

__all__ = [
    "BATCH_ROWS", "CARD", "DATA_DIR", "DIVERSITY", "EVAL_PREFIX", "REJECTS", "SHARD_RE", "STATS", "STRATEGIES_DIR",
    "Build", "BuildFolderError", "listing", "open_build",
]


class BuildFolderError(ValueError):
    """A folder is not a finished build, or a part of it does not read.

    The message names the folder, what is missing and how to fix it. Readers
    pass their own subclass to :func:`open_build` (``error=``), so their callers
    keep catching the reader's error while the text stays the same everywhere.
    """


def _shards_by_split(folder: Path) -> dict[str, dict[int, tuple[int, Path]]]:
    """``{split: {index: (total, path)}}`` of the ``{split}-NNNNN-of-NNNNN.parquet`` files in ``folder``."""
    found: dict[str, dict[int, tuple[int, Path]]] = {}
    for path in sorted(folder.glob("*.parquet")) if folder.is_dir() else []:
        match = SHARD_RE.fullmatch(path.name)
        if match:
            found.setdefault(match["split"], {})[int(match["index"])] = (int(match["total"]), path)
    return found


def _row_count(path: Path, folder: Path, error: type[BuildFolderError]) -> int:
    try:
        return pq.ParquetFile(path).metadata.num_rows
    except (OSError, pa.ArrowException) as exc:  # empty or cut short: a shard being written, or damaged
        raise error(f"{path}: not a readable Parquet file ({exc}); {_rerun(folder)}") from exc


@dataclass
class Build:
    """A finished build folder: where its parts are, its shards per split, and lazy readers of each part."""

    path: Path
    shards: dict[str, list[Path]]  # split -> its default-config shards in order, splits in name order
    fingerprint: str  # of stats.json and the shards' names and sizes
    rows_per_split: dict[str, int] = field(default_factory=dict)
    error: type[BuildFolderError] = field(default=BuildFolderError, repr=False)  # raised by the readers below
    _stats: dict[str, Any] = field(default_factory=dict, repr=False)

    # ---------------------------------------------------------------- where the parts are

    @property
    def stats_path(self) -> Path:
        return self.path / STATS

    @property
    def diversity_path(self) -> Path:
        return self.path / DIVERSITY

    @property
    def rejects_path(self) -> Path:
        return self.path / REJECTS

    @property
    def card_path(self) -> Path:
        return self.path / CARD

    @property
    def strategies_dir(self) -> Path:
        return self.path / STRATEGIES_DIR

    @property
    def splits(self) -> list[str]:
        return list(self.shards)

    @property
    def all_shards(self) -> list[Path]:
        """Every shard of the default config, in file-name order (splits by name, then shard index)."""
        return [path for split in self.shards for path in self.shards[split]]

    def data_files(self) -> dict[str, list[str]]:
        """``{split: [shard path, ...]}`` of the default config, as ``datasets.load_dataset("parquet", ...)`` takes."""
        return {split: [str(p) for p in paths] for split, paths in self.shards.items()}

    def strategy_configs(self) -> dict[str, dict[str, list[Path]]]:
        """``{strategy: {split: shards}}`` of the strategy configs under ``strategies/`` (none when it is absent)."""
        root = self.strategies_dir
        configs = {}
        for folder in sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []:
            found = _shards_by_split(folder)
            configs[folder.name] = {s: [found[s][i][1] for i in sorted(found[s])] for s in sorted(found)}
        return configs

    # ---------------------------------------------------------------- readers

    def stats(self) -> dict[str, Any]:
        """The parsed ``stats.json`` (read once, when the build was opened)."""
        return self._stats

    def diversity(self) -> dict[str, Any] | None:
        """The parsed ``diversity.json``, or None when the build has none."""
        if not self.diversity_path.is_file():
            return None
        return self._read_json(self.diversity_path)

    def rejects(self) -> Iterator[dict[str, Any]]:
        """The records of ``rejects.jsonl`` in order (none without the file).

        A line that is not JSON reads as ``{"reason": "rejects.jsonl line N is not JSON"}``.
        """
        if not self.rejects_path.is_file():
            return
        with self.rejects_path.open(encoding="utf-8") as fh:
            for number, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    yield json.loads(line)
                except ValueError:
                    yield {"reason": f"{REJECTS} line {number} is not JSON"}

    def batches(
        self, columns: Sequence[str], split: str | None = None, batch_rows: int = BATCH_ROWS
    ) -> Iterator[pa.RecordBatch]:
        """Record batches of ``columns`` from the shards of ``split`` (every split when None), in build order."""
        for shard in self.shards[split] if split is not None else self.all_shards:
            yield from pq.ParquetFile(shard).iter_batches(batch_size=batch_rows, columns=list(columns))

    def rows(self, split: str, columns: Sequence[str], batch_rows: int = BATCH_ROWS) -> Iterator[dict[str, Any]]:
        """Rows of one split in build order, ``batch_rows`` at a time from each shard."""
        for batch in self.batches(columns, split, batch_rows):
            yield from batch.to_pylist()

    def caption_sources(self) -> dict[str, int]:
        """Caption candidates of the build by source (report, template, llm)."""
        return {k: int(v) for k, v in (self._stats.get("caption_candidates") or {}).items() if v}

    def _read_json(self, path: Path) -> Any:
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise self.error(f"{path}: not valid JSON ({exc}); {_rerun(self.path)}") from exc


def listing(folder: Path, limit: int = 8) -> str:
    """The entries of ``folder`` for an error message (folders end in ``/``)."""
    names = sorted(p.name + ("/" if p.is_dir() else "") for p in folder.iterdir())
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return (", ".join(names[:limit]) + more) or "nothing"


def _rerun(folder: Path) -> str:
    return f"rerun the same `echocaptions build ... --out {folder}` to resume it"


def _new(folder: Path) -> str:
    return f"run `echocaptions build` with `--out {folder}` to make one there"


def open_build(folder: str | Path, *, error: type[BuildFolderError] = BuildFolderError) -> Build:
    """Check that ``folder`` is a finished build and describe it; raise ``error`` (with the same text) otherwise."""
    folder = Path(folder)
    if not folder.is_dir():
        why = "" if folder.exists() else ": no such folder"
        raise error(f"{folder} is not a folder{why}; {_new(folder)}, or pass the --out folder of a finished build")
    stats_path = folder / STATS
    found = _shards_by_split(folder / DATA_DIR)
    if not stats_path.is_file():
        if not found and not (folder / WORK_DIR).is_dir() and not (folder / DATA_DIR).is_dir():
            raise error(
                f"no build at {folder}: no {STATS} (it holds: {listing(folder)}) and no {DATA_DIR}/*.parquet "
                f"in {folder}; {_new(folder)}"
            )
        raise error(
            f"{folder} is not a finished build: no {STATS} (it holds: {listing(folder)}); a build writes {STATS} "
            f"last, so no {STATS} in {folder} means its build was stopped or is still running: {_rerun(folder)}"
        )
    stats_bytes = stats_path.read_bytes()
    try:
        stats = json.loads(stats_bytes.decode("utf-8"))
    except ValueError as exc:  # not UTF-8, or not JSON
        raise error(f"{stats_path}: not valid JSON ({exc}); {_rerun(folder)}") from exc
    expected = stats.get("splits") if isinstance(stats, dict) else None
    if not isinstance(expected, dict) or not expected:
        raise error(f"{stats_path}: no 'splits' table; this is not a {STATS} written by a build")
    if not found:
        raise error(
            f"{folder} is not a finished build: no {DATA_DIR}/{{split}}-NNNNN-of-NNNNN.parquet shards "
            f"(it holds: {listing(folder)}); {_rerun(folder)}"
        )
    shards: dict[str, list[Path]] = {}
    rows: dict[str, int] = {}
    for split in sorted(set(found) | set(expected)):
        have = found.get(split, {})
        totals = {total for total, _ in have.values()}
        count = sum(_row_count(p, folder, error) for _, p in have.values())
        complete = len(totals) == 1 and sorted(have) == list(range(totals.pop()))
        if split not in expected or not complete or count != expected[split]:
            raise error(
                f"{folder} is not a finished build: split {split!r} has {len(have)} shard(s) with {count} rows "
                f"in {DATA_DIR}/, {STATS} says {expected.get(split, 'no such split')} rows"
                f"{'' if complete else ' (shards missing from the NNNNN-of-NNNNN sequence)'}; "
                f"a build may still be running or was stopped: {_rerun(folder)}"
            )
        shards[split] = [have[i][1] for i in sorted(have)]
        rows[split] = count
    digest = hashlib.sha256(stats_bytes)
    for split in shards:
        for path in shards[split]:
            digest.update(f"\0{path.name}\0{path.stat().st_size}".encode())
    return Build(folder, shards, digest.hexdigest(), rows, error, stats)
