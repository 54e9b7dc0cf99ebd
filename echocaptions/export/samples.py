"""One build row as the samples an exporter writes: image bytes, caption text, metadata.

A row gives one sample per caption of its strategy: one for the single-caption
strategies, K for the ``*_multi`` ones (keys ``{id}_c0`` … ``{id}_c{K-1}``, the
same image bytes each time), so open_clip's trainer, which reads one caption
per sample, sees every caption of the image once per epoch. Every sample's
metadata also lists all K captions with their provenance. A row that cannot be
a sample (no image bytes, an image format the tools do not read, no caption
of the strategy) gives none, and the reason is counted by the exporter.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from echocaptions.captions import strategies
from echocaptions.schema import LABEL_NAMES, ORGANS

ROW_COLUMNS = (
    "id", "image", "organ", "label", "dataset", "split", "source_path", "frame",
    "license", "width", "height", "sha256", "captions",
)
# Columns that say what a row is, without its image or captions (cheap to scan).
LIGHT_COLUMNS = ("id", "organ", "label", "dataset", "split")

# Image formats webdataset's decoders, open_clip and CLIP_benchmark read, by magic bytes.
_MAGIC = ((b"\x89PNG\r\n\x1a\n", "png"), (b"\xff\xd8\xff", "jpg"))


@dataclass(frozen=True)
class Sample:
    key: str
    image: bytes
    ext: str
    text: str
    meta: dict[str, Any]

    def json_bytes(self) -> bytes:
        return dumps(self.meta)


def dumps(value: Any) -> bytes:
    """Deterministic compact JSON (sorted keys, UTF-8)."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def image_ext(data: bytes | None) -> str | None:
    if not data:
        return None
    for magic, ext in _MAGIC:
        if data.startswith(magic):
            return ext
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


def organ_name(value: int | str) -> str:
    return value if isinstance(value, str) else ORGANS[value]


def label_name(value: int | str | None) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return None if value < 0 else LABEL_NAMES[value]


def one_line(text: str) -> str:
    """A caption on one line (retrieval files hold one caption per line)."""
    return " ".join(text.split())


def provenance(candidate: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in sorted(candidate.items()) if k not in ("source", "text") and v is not None}


def chosen_captions(row: Mapping[str, Any], strategy: str) -> tuple[str | None, list[Mapping[str, Any]]]:
    """The strategy's source for this row and its candidates, in the order the strategy gives them."""
    source, texts = strategies.candidates(row, strategy)
    if source is None:
        return None, []
    cands = [c for c in row.get("captions") or () if c.get("source") == source and c.get("text")]
    return source, cands[: len(texts)]


def row_meta(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "split": row["split"],
        "dataset": row["dataset"],
        "organ": organ_name(row["organ"]),
        "label": label_name(row["label"]),
        "source_path": row.get("source_path"),
        "frame": row.get("frame"),
        "license": row.get("license"),
        "width": row.get("width"),
        "height": row.get("height"),
        "sha256": row.get("sha256"),
    }


def image_of(row: Mapping[str, Any]) -> tuple[bytes | None, str | None, str | None]:
    """``(bytes, ext, skip_reason)`` of a row's embedded image."""
    data = (row.get("image") or {}).get("bytes")
    if not data:
        return None, None, "no_image_bytes"
    ext = image_ext(data)
    if ext is None:
        return None, None, "image_not_png_jpeg_webp"
    return data, ext, None


def row_samples(row: Mapping[str, Any], strategy: str) -> tuple[list[Sample], str | None]:
    """The samples of one row and, when there are none, why (a reason key)."""
    data, ext, why = image_of(row)
    if why:
        return [], why
    source, cands = chosen_captions(row, strategy)
    if not cands:
        return [], "no_caption_for_strategy"
    assert data is not None and ext is not None
    meta = {**row_meta(row), "strategy": strategy, "caption_source": source}
    multi = strategies.is_multi(strategy)
    if multi:
        meta["captions"] = [{"text": c["text"], "provenance": provenance(c)} for c in cands]
    out = []
    for k, cand in enumerate(cands):
        key = f"{row['id']}_c{k}" if multi else row["id"]
        extra = {"caption": cand["text"], "provenance": provenance(cand)}
        if multi:
            extra["caption_index"] = k
        out.append(Sample(key, data, ext, cand["text"], {**meta, **extra}))
    return out, None
