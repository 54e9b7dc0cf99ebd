"""The image stage: one numbered shard of items in, one staged Parquet file out.

This is the only heavy CPU work of a build and runs on the executor's
workers. Each shard's items (``items/NNNNN.jsonl``, written by enumeration)
are decoded and normalised into ``staged/NNNNN.parquet`` (rows: the image and
the small columns curation reads) and ``staged/NNNNN.rejects.jsonl``; the
stage driver (:mod:`echocaptions.driver`) marks a shard done with a
fingerprint of its input (the items, the size and mtime of each file, the
image options), so an interrupted build resumes without redoing finished
shards and a changed input is never mistaken for a finished one.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from echocaptions.driver import ShardStage
from echocaptions.imaging.crop import crop_to_sector
from echocaptions.imaging.normalise import Normalised, normalise
from echocaptions.imaging.readers import reader_for
from echocaptions.io import atomic_write, write_text
from echocaptions.recipe import ImageSpec, VideoSpec
from echocaptions.schema import Reject, SourceItem, make_id
from echocaptions.stats import ImageStats

STAGED_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("frame", pa.int32()),
        ("image", pa.binary()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("sha256", pa.string()),
        ("phash", pa.int64()),
        ("passthrough", pa.bool_()),
        ("item", pa.string()),
    ]
)
# The columns of a staged row besides its image: what curation and the caption stage read.
SMALL_COLUMNS = ["id", "frame", "width", "height", "sha256", "phash", "item"]
# What the image options fingerprint leaves out: it changes which items are listed, not their pixels.
_LISTING_ONLY = {"drop_burned_in"}


class ImageOptions(ImageSpec, VideoSpec):
    """The recipe's ``image`` and ``video`` blocks as one object, fields and defaults as the recipe has them."""

    @classmethod
    def of(cls, image: ImageSpec, video: VideoSpec) -> ImageOptions:
        return cls(**image.model_dump(), **video.model_dump())


@dataclass(frozen=True)
class ShardTask:
    index: int
    items_path: str
    staged_path: str
    rejects_path: str
    done_path: str
    options: ImageOptions
    # Modules to import before decoding: importing them registers the image readers they bring
    # (the source adapters' HDF5 and MAT readers), in a worker that has not imported them yet.
    reader_modules: tuple[str, ...] = ()


def fingerprint(task: ShardTask) -> str:
    """Hash of what a shard's staged output depends on: items, their files, image options."""
    text = Path(task.items_path).read_bytes()
    digest = hashlib.sha256(text)
    digest.update(json.dumps(task.options.model_dump(exclude=_LISTING_ONLY), sort_keys=True).encode())
    for line in text.splitlines():
        path = json.loads(line)["path"]
        try:
            st = os.stat(path)
            digest.update(f"{path}\x1f{st.st_size}\x1f{st.st_mtime_ns}\n".encode())
        except OSError:
            digest.update(f"{path}\x1fmissing\n".encode())
    return digest.hexdigest()


def decode_item(item: SourceItem, options: ImageOptions) -> Iterator[tuple[int | None, Normalised]]:
    """Decoded, normalised frames of one item (several when a video is expanded)."""
    path = Path(item.path)
    reader = reader_for(path)
    if not item.expand:
        if options.crop_sector:
            img = crop_to_sector(reader.read(path, item.frame))
            yield item.frame, normalise(img, options.max_side, options.grayscale)
        else:
            yield item.frame, reader.load(path, item.frame, options.max_side, options.grayscale, item.extra)
        return
    produced = False
    for index, img in reader.sample(path, options.fps, options.max_frames):
        produced = True
        if options.crop_sector:
            img = crop_to_sector(img)
        yield index, normalise(img, options.max_side, options.grayscale)
    if not produced:
        raise ValueError("no frames could be decoded")


def run_shard(task: ShardTask) -> dict[str, Any]:
    """Decode every item of a shard; write its staged rows and rejects.

    Returns :class:`~echocaptions.stats.ImageStats` (plain) per source:
    ``items`` decoded into at least one row, ``rows`` (frames included),
    ``rejects``, and ``passthrough`` PNGs.
    """
    for name in task.reader_modules:
        importlib.import_module(name)
    columns: dict[str, list] = {name: [] for name in STAGED_SCHEMA.names}
    rejects: list[Reject] = []
    stats = ImageStats()
    with open(task.items_path, encoding="utf-8") as fh, warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        for line in fh:
            item = SourceItem.from_dict(json.loads(line))
            count = stats.by_source[item.source]
            try:
                frames = list(decode_item(item, task.options))
            except Exception as exc:  # any decoder failure is one reject, never a crash
                text = str(exc).replace(item.path, item.source_path)
                reason = f"unreadable image: {type(exc).__name__}: {text}"
                rejects.append(Reject(item.source, item.source_path, reason, stage="decode"))
                count["rejects"] += 1
                continue
            count["items"] += 1
            item_json = json.dumps(item.to_dict(), sort_keys=True, ensure_ascii=False)
            for frame, norm in frames:
                columns["id"].append(make_id(item.dataset, item.source_path, frame))
                columns["frame"].append(frame)
                columns["image"].append(norm.png)
                columns["width"].append(norm.width)
                columns["height"].append(norm.height)
                columns["sha256"].append(norm.sha256)
                columns["phash"].append(norm.phash)
                columns["passthrough"].append(norm.passthrough)
                columns["item"].append(item_json)
                count["rows"] += 1
                count["passthrough"] += int(norm.passthrough)
    table = pa.Table.from_pydict(columns, schema=STAGED_SCHEMA)
    atomic_write(task.staged_path, lambda p: pq.write_table(table, p, compression="none"))
    write_text(task.rejects_path, "".join(json.dumps(r.to_dict(), sort_keys=True) + "\n" for r in rejects))
    return stats.to_dict()


def read_rejects(tasks: Sequence[ShardTask]) -> list[Reject]:
    """The decode rejects of every shard, in shard order."""
    out: list[Reject] = []
    for task in tasks:
        text = Path(task.rejects_path).read_text(encoding="utf-8")
        out.extend(Reject(**json.loads(line)) for line in text.splitlines() if line.strip())
    return out


class ImageStage(ShardStage[ShardTask]):
    """Items in, staged rows out; see the module docstring.

    Input: the item shards of enumeration. Output per shard: ``staged/NNNNN.parquet``
    (:data:`STAGED_SCHEMA`) and ``staged/NNNNN.rejects.jsonl``.
    """

    name = "images"

    def __init__(
        self, work_dir: Path, options: ImageOptions, reader_modules: Sequence[str] = (), work=run_shard
    ) -> None:
        super().__init__(Path(work_dir) / "staged", work)
        self.options = options
        self.reader_modules = tuple(reader_modules)

    def plan(self, item_paths: Sequence[Path]) -> list[ShardTask]:
        return [
            ShardTask(
                index=i,
                items_path=str(path),
                staged_path=str(self.folder / f"{i:05d}.parquet"),
                rejects_path=str(self.folder / f"{i:05d}.rejects.jsonl"),
                done_path=str(self.folder / f"{i:05d}.done"),
                options=self.options,
                reader_modules=self.reader_modules,
            )
            for i, path in enumerate(item_paths)
        ]

    def fingerprint(self, task: ShardTask) -> str:
        return fingerprint(task)

    def outputs(self, task: ShardTask) -> tuple[str, ...]:
        return (task.staged_path, task.rejects_path)

    def items(self, results: Sequence[dict[str, Any]]) -> int:
        return ImageStats.total(results).items
