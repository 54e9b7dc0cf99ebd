"""The image stage: one numbered shard of items in, one staged Parquet file out.

This is the only heavy CPU work of a build and runs in worker processes. A
shard's output is written to a temporary name, then renamed, then marked done
with the hash of its input, so an interrupted build resumes without redoing
finished shards and a changed input is never mistaken for a finished one.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from echocaptions.imaging.normalise import Normalised, normalise, normalise_file
from echocaptions.imaging.readers import PillowReader, reader_for
from echocaptions.schema import Reject, SourceItem, make_id

_OBJECT_REPR = re.compile(r"<[^<>]* at 0x[0-9a-fA-F]+>")

STAGED_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("frame", pa.int32()),
        ("image", pa.binary()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("sha256", pa.string()),
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


@dataclass(frozen=True)
class ShardTask:
    index: int
    items_path: str
    staged_path: str
    rejects_path: str
    done_path: str
    options: ImageOptions


def fingerprint(task: ShardTask) -> str:
    """Hash of a shard's items and image options: what its staged output depends on."""
    digest = hashlib.sha256(Path(task.items_path).read_bytes())
    digest.update(json.dumps(asdict(task.options), sort_keys=True).encode())
    return digest.hexdigest()


def is_done(task: ShardTask) -> bool:
    done = Path(task.done_path)
    if not done.is_file() or not Path(task.staged_path).is_file():
        return False
    try:
        marker = json.loads(done.read_text())
    except (OSError, json.JSONDecodeError):
        return False
    return marker.get("fingerprint") == fingerprint(task)


def decode_item(item: SourceItem, options: ImageOptions) -> Iterator[tuple[int | None, Normalised]]:
    """Decoded, normalised frames of one item (several when a video is expanded)."""
    path = Path(item.path)
    reader = reader_for(path)
    if item.expand:
        produced = False
        for index, img in reader.sample(path, options.fps, options.max_frames):
            produced = True
            yield index, normalise(img, options.max_side, options.grayscale)
        if not produced:
            raise ValueError("no frames could be decoded")
    elif isinstance(reader, PillowReader) and not item.frame:
        yield item.frame, normalise_file(path, options.max_side, options.grayscale)
    else:
        yield item.frame, normalise(reader.read(path, item.frame), options.max_side, options.grayscale)


def run_shard(task: ShardTask) -> dict[str, int]:
    """Decode every item of a shard; write staged rows, rejects and the done marker."""
    columns: dict[str, list] = {name: [] for name in STAGED_SCHEMA.names}
    rejects: list[Reject] = []
    stats = {"items": 0, "rows": 0, "rejects": 0, "passthrough": 0, "videos": 0}
    with open(task.items_path, encoding="utf-8") as fh:
        for line in fh:
            item = SourceItem.from_dict(json.loads(line))
            stats["items"] += 1
            stats["videos"] += int(item.expand)
            try:
                frames = list(decode_item(item, task.options))
            except Exception as exc:  # any decoder failure is one reject, never a crash
                rejects.append(
                    Reject(
                        source=item.source,
                        path=item.source_path,
                        reason=_reason(exc, item),
                        stage="decode",
                    )
                )
                continue
            item_json = json.dumps(item.to_dict(), sort_keys=True, ensure_ascii=False)
            for frame, norm in frames:
                columns["id"].append(make_id(item.dataset, item.source_path, frame))
                columns["frame"].append(frame)
                columns["image"].append(norm.png)
                columns["width"].append(norm.width)
                columns["height"].append(norm.height)
                columns["sha256"].append(norm.sha256)
                columns["passthrough"].append(norm.passthrough)
                columns["item"].append(item_json)
                stats["passthrough"] += int(norm.passthrough)
    stats["rows"] = len(columns["id"])
    stats["rejects"] = len(rejects)
    table = pa.Table.from_pydict(columns, schema=STAGED_SCHEMA)
    _atomic_write(Path(task.staged_path), lambda p: pq.write_table(table, p, compression="none"))
    _atomic_write(
        Path(task.rejects_path),
        lambda p: Path(p).write_text(
            "".join(json.dumps(r.to_dict(), sort_keys=True) + "\n" for r in rejects), encoding="utf-8"
        ),
    )
    marker = {"fingerprint": fingerprint(task), **stats}
    _atomic_write(Path(task.done_path), lambda p: Path(p).write_text(json.dumps(marker, sort_keys=True)))
    return stats


def _reason(exc: Exception, item: SourceItem) -> str:
    text = _OBJECT_REPR.sub("file", str(exc)).replace(item.path, item.source_path)
    return f"unreadable image: {type(exc).__name__}: {text}"


def _atomic_write(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    write(str(tmp))
    os.replace(tmp, path)
