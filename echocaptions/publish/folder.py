"""A build's published folder, written beside the old one and swapped in at the end.

The Parquet shards of the default config go to ``OUT/.work/data.tmp`` and the
strategy configs to ``OUT/.work/strategies.tmp``; the card, ``stats.json``,
``diversity.json`` and ``rejects.jsonl`` to ``OUT/.work/NAME.tmp``. Only when
everything is written are they renamed into ``OUT``, so a folder holds one
whole build at a time: an interrupted rebuild leaves the previous one as it
was.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from echocaptions.publish import strategy_configs
from echocaptions.publish.parquet import SHARD_RE, write_splits

# The files of a published build; publish/build.py reads them by these names.
DATA_DIR = "data"
STATS = "stats.json"
DIVERSITY = "diversity.json"
REJECTS = "rejects.jsonl"
CARD = "README.md"
WORK_DIR = ".work"  # staged work of a build that has not finished (or was kept with --keep-work)
DATA_TMP = "data.tmp"
STRATEGIES_TMP = "strategies.tmp"


@dataclass
class Shards:
    """The shards written for the default config, per split, and the strategy configs' counts."""

    split_files: dict[str, list[str]]  # split -> data/NAME.parquet paths, for the card
    split_bytes: dict[str, int]  # Arrow size of each split (the card's num_bytes)
    split_download_bytes: dict[str, int]  # bytes of each split's files
    strategies: dict[str, Any] | None  # per strategy config: caption sources and split bytes


def write_shards(
    work: Path,
    rows: Iterable[dict[str, Any]],
    split_rows: Mapping[str, int],
    rows_per_shard: int,
    strategy_names: Sequence[str] | None,
    strategy_images: bool,
) -> Shards:
    """Write the published rows (and the strategy configs unless ``strategy_names`` is None) under ``work``."""
    tmp_data, tmp_strategies = work / DATA_TMP, work / STRATEGIES_TMP
    for tmp in (tmp_data, tmp_strategies):
        if tmp.exists():
            shutil.rmtree(tmp)
    written = write_splits(tmp_data, rows, dict(split_rows), rows_per_shard)
    strategies = None
    if strategy_names is not None:
        strategies = strategy_configs.write(tmp_data, tmp_strategies, strategy_names, strategy_images)
    splits = sorted(written.items())
    return Shards(
        split_files={s: [f"{DATA_DIR}/{p.name}" for p in w.paths] for s, w in splits},
        split_bytes={s: w.nbytes for s, w in splits},
        split_download_bytes={s: sum(p.stat().st_size for p in w.paths) for s, w in splits},
        strategies=strategies,
    )


def swap_in(out: Path, work: Path, files: Mapping[str, str]) -> None:
    """Replace the published shards, strategy configs and ``files`` (name -> text) of ``out`` at once."""
    for name, text in files.items():
        (work / f"{name}.tmp").write_text(text, encoding="utf-8")
    tmp_data = work / DATA_TMP
    data_dir = out / DATA_DIR
    data_dir.mkdir(exist_ok=True)
    for old in data_dir.iterdir():
        if SHARD_RE.fullmatch(old.name):
            old.unlink()
    for new in sorted(tmp_data.iterdir()):
        os.replace(new, data_dir / new.name)
    tmp_data.rmdir()
    old_strategies = out / strategy_configs.FOLDER
    if old_strategies.is_dir():
        shutil.rmtree(old_strategies)
    new_strategies = work / STRATEGIES_TMP
    if new_strategies.is_dir():
        os.replace(new_strategies, old_strategies)
    for name in files:
        os.replace(work / f"{name}.tmp", out / name)
