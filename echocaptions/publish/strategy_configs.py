"""One Hugging Face config per caption strategy, beside the default config.

The default config (``data/``) holds every row with every caption candidate.
A strategy config (``strategies/{name}/``) holds the same rows in the same
order and splits, with ``caption`` and ``caption_source`` as that strategy
picks them (see :mod:`echocaptions.captions.strategies`), so the Hub viewer and
``load_dataset(OUT, "template_only")`` show the strategies side by side.

By default a strategy config is a light table (ids, labels and the caption)
that joins the default config on ``id``; ``output.strategy_images: true``
embeds the images as well, at the cost of one more copy of the image bytes per
strategy. Shards mirror the default config's shards one to one and are read
in batches, so memory does not grow with the build.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from echocaptions.captions import strategies

FOLDER = "strategies"
LIGHT_COLUMNS = ("id", "organ", "label", "dataset", "split")
BATCH_ROWS = 256


def features(with_image: bool):
    """The ``datasets.Features`` of a strategy config (a subset of the default schema)."""
    from datasets import Features, Value

    from echocaptions.schema import hf_features

    full = hf_features()
    columns = ["id", *(["image"] if with_image else []), *LIGHT_COLUMNS[1:]]
    out = {name: full[name] for name in columns}
    out["caption"] = Value("string")
    out["caption_source"] = Value("string")
    return Features(out)


def names_for(policy: Sequence[str]) -> list[str]:
    """The published strategies a build with this caption policy can tell apart."""
    return [s for s in strategies.PUBLISHED if s not in strategies.NEEDS_LLM or "llm" in policy]


def write(
    data_dir: Path, dest: Path, names: Sequence[str], with_image: bool
) -> dict[str, dict[str, dict[str, int]]]:
    """Write ``dest/{name}/{shard}`` for every shard in ``data_dir``.

    Returns per strategy the rows by caption source (``caption_sources``) and
    the Arrow size of each split (``split_bytes``) for the card.
    """
    schema = features(with_image).arrow_schema
    read_columns = ["id", *(["image"] if with_image else []), *LIGHT_COLUMNS[1:], "captions"]
    counts: dict[str, Counter[str]] = {name: Counter() for name in names}
    nbytes: dict[str, Counter[str]] = {name: Counter() for name in names}
    for name in names:
        (dest / name).mkdir(parents=True, exist_ok=True)
    for shard in sorted(data_dir.glob("*.parquet")):
        writers = {
            name: pq.ParquetWriter(dest / name / shard.name, schema, compression="zstd")
            for name in names
        }
        try:
            for batch in pq.ParquetFile(shard).iter_batches(batch_size=BATCH_ROWS, columns=read_columns):
                rows = batch.to_pylist()
                for name, writer in writers.items():
                    out = []
                    for row in rows:
                        source, texts = strategies.candidates(row, name)
                        counts[name][source or "none"] += 1
                        picked = {k: row[k] for k in read_columns if k != "captions"}
                        out.append({**picked, "caption": texts[0] if texts else None, "caption_source": source})
                    table = pa.Table.from_pylist(out, schema=schema)
                    nbytes[name][shard.name.split("-", 1)[0]] += table.nbytes
                    writer.write_table(table)
        finally:
            for writer in writers.values():
                writer.close()
    return {
        name: {"caption_sources": dict(sorted(counts[name].items())), "split_bytes": dict(sorted(nbytes[name].items()))}
        for name in names
    }


def card_configs(split_files: dict[str, list[str]], names: Sequence[str]) -> list[dict]:
    """The ``configs`` entries of the card for the strategy configs."""
    return [
        {
            "config_name": name,
            "data_files": [
                {"split": split, "path": f"{FOLDER}/{name}/{split}-*.parquet"} for split in sorted(split_files)
            ],
        }
        for name in names
    ]
