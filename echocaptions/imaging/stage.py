"""The image stage: one numbered shard of items in, one staged Parquet file out.

This is the only heavy CPU work of a build and runs in worker processes. A
shard's output is written to a temporary name, then renamed, then marked done
with a fingerprint of its input (the items, the size and mtime of each file,
the image options), so an interrupted build resumes without redoing finished
shards and a changed input is never mistaken for a finished one.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import socket
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

import echocaptions.sources  # noqa: F401  (adapters may register readers for their formats)
from echocaptions.imaging.crop import crop_to_sector
from echocaptions.imaging.normalise import Normalised, normalise
from echocaptions.imaging.readers import reader_for
from echocaptions.schema import Reject, SourceItem, make_id

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


@dataclass(frozen=True)
class ImageOptions:
    max_side: int | None = 512
    grayscale: str = "auto"
    fps: float = 1.0
    max_frames: int = 8
    crop_sector: bool = False


@dataclass(frozen=True)
class ShardTask:
    index: int
    items_path: str
    staged_path: str
    rejects_path: str
    done_path: str
    options: ImageOptions


def fingerprint(task: ShardTask) -> str:
    """Hash of what a shard's staged output depends on: items, their files, image options."""
    text = Path(task.items_path).read_bytes()
    digest = hashlib.sha256(text)
    digest.update(json.dumps(asdict(task.options), sort_keys=True).encode())
    for line in text.splitlines():
        path = json.loads(line)["path"]
        try:
            st = os.stat(path)
            digest.update(f"{path}\x1f{st.st_size}\x1f{st.st_mtime_ns}\n".encode())
        except OSError:
            digest.update(f"{path}\x1fmissing\n".encode())
    return digest.hexdigest()


def done_stats(task: ShardTask) -> dict[str, Any] | None:
    """The stats a finished shard recorded, or None when it must be (re)run."""
    done = Path(task.done_path)
    if not done.is_file() or not Path(task.staged_path).is_file():
        return None
    try:
        marker = json.loads(done.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return marker["stats"] if marker.get("fingerprint") == fingerprint(task) else None


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
    """Decode every item of a shard; write staged rows, rejects and the done marker.

    Returns counts per source: ``items`` decoded into at least one row,
    ``rows`` (frames included), ``rejects``, and ``passthrough`` PNGs.
    """
    columns: dict[str, list] = {name: [] for name in STAGED_SCHEMA.names}
    rejects: list[Reject] = []
    counts: dict[str, Counter] = {}
    with open(task.items_path, encoding="utf-8") as fh, warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        for line in fh:
            item = SourceItem.from_dict(json.loads(line))
            count = counts.setdefault(item.source, Counter())
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
    _atomic_write(Path(task.staged_path), lambda p: pq.write_table(table, p, compression="none"))
    lines = "".join(json.dumps(r.to_dict(), sort_keys=True) + "\n" for r in rejects)
    _atomic_write(Path(task.rejects_path), lambda p: Path(p).write_text(lines, encoding="utf-8"))
    stats = {source: dict(c) for source, c in sorted(counts.items())}
    marker = json.dumps({"fingerprint": fingerprint(task), "stats": stats}, sort_keys=True)
    _atomic_write(Path(task.done_path), lambda p: Path(p).write_text(marker))
    return stats


def _atomic_write(path: Path, write: Callable[[str], Any]) -> None:
    """Write through a temporary file unique to this attempt, then rename it into place.

    The name carries the host, the process and a random part: on a cluster a
    retried shard may run while the original attempt still writes on another
    node, and both must never share a temporary file.
    """
    tmp = path.with_name(f".{path.name}.{socket.gethostname()}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        write(str(tmp))
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
