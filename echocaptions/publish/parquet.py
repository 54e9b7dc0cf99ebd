"""Write published rows as ``data/{split}-NNNNN-of-NNNNN.parquet`` shards.

Image bytes are embedded (the Parquet stands alone), the Hugging Face features
travel in the schema metadata, PNG bytes are stored uncompressed (they do not
compress) and the other columns with zstd. Row groups are small so viewers
and readers can page through images.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from echocaptions.schema import arrow_schema

ROW_GROUP_ROWS = 100
SHARD_RE = re.compile(r"(?P<split>\w+)-(?P<index>\d{5})-of-(?P<total>\d{5})\.parquet")  # shard_name's names


def shard_name(split: str, index: int, total: int) -> str:
    return f"{split}-{index:05d}-of-{total:05d}.parquet"


def shard_count(rows: int, rows_per_shard: int) -> int:
    return max(1, math.ceil(rows / rows_per_shard))


def _compression(schema: pa.Schema) -> dict[str, str]:
    out: dict[str, str] = {}

    def walk(prefix: str, dtype: pa.DataType) -> None:
        if pa.types.is_struct(dtype):
            for child in dtype:
                walk(f"{prefix}.{child.name}", child.type)
        elif pa.types.is_list(dtype):
            walk(f"{prefix}.list.element", dtype.value_type)
        else:
            out[prefix] = "none" if prefix == "image.bytes" else "zstd"

    for f in schema:
        walk(f.name, f.type)
    return out


class SplitWriter:
    """Streams rows of one split into numbered shards of ``rows_per_shard`` rows."""

    def __init__(self, folder: Path, split: str, total_rows: int, rows_per_shard: int) -> None:
        self.folder = folder
        self.split = split
        self.rows_per_shard = rows_per_shard
        self.total_rows = total_rows
        self.rows_written = 0
        self.total_shards = shard_count(total_rows, rows_per_shard)
        self.schema = arrow_schema()
        self.compression = _compression(self.schema)
        self.shard_index = 0
        self.rows_in_shard = 0
        self.buffer: list[dict[str, Any]] = []
        self.writer: pq.ParquetWriter | None = None
        self.paths: list[Path] = []
        self.nbytes = 0

    def _open(self) -> None:
        path = self.folder / shard_name(self.split, self.shard_index, self.total_shards)
        self.paths.append(path)
        self.writer = pq.ParquetWriter(
            path, self.schema, compression=self.compression, write_statistics=["id", "split"]
        )

    def _flush(self) -> None:
        if not self.buffer:
            return
        if self.writer is None:
            self._open()
        table = pa.Table.from_pylist(self.buffer, schema=self.schema)
        self.nbytes += table.nbytes
        self.writer.write_table(table, row_group_size=ROW_GROUP_ROWS)
        self.buffer = []

    def write(self, row: dict[str, Any]) -> None:
        self.buffer.append(row)
        self.rows_in_shard += 1
        self.rows_written += 1
        if len(self.buffer) >= ROW_GROUP_ROWS:
            self._flush()
        if self.rows_in_shard >= self.rows_per_shard:
            self._close_shard()

    def _close_shard(self) -> None:
        self._flush()
        if self.writer is not None:
            self.writer.close()
            self.writer = None
            self.shard_index += 1
        self.rows_in_shard = 0

    def close(self) -> list[Path]:
        self._close_shard()
        if self.rows_written != self.total_rows:
            raise RuntimeError(f"split {self.split}: wrote {self.rows_written} rows, expected {self.total_rows}")
        if self.shard_index != self.total_shards:
            raise RuntimeError(
                f"split {self.split}: wrote {self.shard_index} shards, expected {self.total_shards}"
            )
        return self.paths


def write_splits(
    folder: Path, rows: Iterable[dict[str, Any]], counts: dict[str, int], rows_per_shard: int
) -> dict[str, SplitWriter]:
    """Write rows (each with a ``split`` key) into per-split shard files under ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    writers = {s: SplitWriter(folder, s, n, rows_per_shard) for s, n in counts.items() if n > 0}
    for row in rows:
        writers[row["split"]].write(row)
    for writer in writers.values():
        writer.close()
    return writers
