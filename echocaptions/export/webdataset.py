"""Webdataset tar shards that ``python -m open_clip_train.main`` reads as they are.

Each split becomes ``{split}-000000.tar``, ``{split}-000001.tar``, … in the
destination (so ``{split}-{000000..000007}.tar`` brace-expands to them), each
holding ``samples_per_shard`` samples of three members: ``{key}.png`` (the
build's image bytes, unchanged), ``{key}.txt`` (the caption) and ``{key}.json``
(id, organ, label, dataset, caption source, provenance and, for ``*_multi``
strategies, all the image's captions). ``sizes.json`` beside the shards gives
each shard's sample count, which open_clip reads when ``--train-num-samples``
is left out.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from tqdm import tqdm

from echocaptions.export.samples import ROW_COLUMNS, dumps, row_samples
from echocaptions.export.shards import ExportState, ShardSeries
from echocaptions.publish.build import Build

DEFAULT_SPLITS = ("train", "validation")
SIZES = "sizes.json"


def shard_name(split: str, index: int) -> str:
    return f"{split}-{index:06d}.tar"


def brace_pattern(split: str, shards: int) -> str:
    """The brace pattern that expands to every shard of a split (open_clip's ``--train-data``)."""
    return f"{split}-{{{0:06d}..{max(shards - 1, 0):06d}}}.tar"


def export(
    build: Build, state: ExportState, strategy: str, splits: Sequence[str], samples_per_shard: int, quiet: bool
) -> dict[str, Any]:
    sizes: dict[str, int] = {}
    summary: dict[str, Any] = {"format": "webdataset", "strategy": strategy, "splits": {}}
    for split in splits:
        series = ShardSeries(state, lambda i, s=split: shard_name(s, i), samples_per_shard)
        skipped: Counter[str] = Counter()
        rows = 0
        bar = tqdm(total=build.rows_per_split[split], desc=f"webdataset {split}", unit="row", disable=quiet)
        try:
            for row in build.rows(split, ROW_COLUMNS):
                bar.update()
                samples, why = row_samples(row, strategy)
                if why:
                    skipped[why] += 1
                    continue
                rows += 1
                for s in samples:
                    series.add(
                        [(f"{s.key}.{s.ext}", s.image), (f"{s.key}.txt", s.text.encode("utf-8")),
                         (f"{s.key}.json", s.json_bytes())]
                    )
            shards = series.close()
        except BaseException:
            series.abort()
            raise
        finally:
            bar.close()
        sizes.update(shards)
        summary["splits"][split] = {
            "rows": rows,
            "samples": series.samples,
            "shards": len(shards),
            "pattern": brace_pattern(split, len(shards)) if shards else None,
            "skipped_rows": dict(sorted(skipped.items())),
        }
    state.write_file(SIZES, dumps(dict(sorted(sizes.items()))) + b"\n")
    return summary
