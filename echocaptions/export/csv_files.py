"""Image files and one tab-separated CSV per split, for open_clip's ``--dataset-type csv``.

Images go to ``images/{split}/{id}.png`` (the build's bytes, unchanged), and
``{split}.csv`` lists one sample per line: ``filepath`` (absolute, since
open_clip opens the path as written) and ``title`` (the caption), open_clip's
default ``--csv-img-key`` and ``--csv-caption-key``, then id, dataset, organ,
label and caption source. A ``*_multi`` strategy gives one line per caption,
all pointing at the same image file. A split's CSV is written last and
recorded in the manifest; a rerun skips finished splits and the images
already on disk.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm

from echocaptions.export.samples import ROW_COLUMNS, row_samples
from echocaptions.export.shards import ExportState, file_sha256, write_atomic
from echocaptions.io import atomic_write
from echocaptions.publish.build import Build

DEFAULT_SPLITS = ("train", "validation")
IMAGE_KEY = "filepath"
CAPTION_KEY = "title"
COLUMNS = (IMAGE_KEY, CAPTION_KEY, "id", "dataset", "organ", "label", "caption_source")


def csv_name(split: str) -> str:
    return f"{split}.csv"


def _write_image(path: Path, data: bytes) -> None:
    if path.is_file() and path.stat().st_size == len(data):
        return
    write_atomic(path, data)


def _export_split(build: Build, state: ExportState, strategy: str, split: str, quiet: bool) -> dict[str, Any]:
    folder = state.dest / "images" / split
    folder.mkdir(parents=True, exist_ok=True)
    target = state.dest / csv_name(split)
    skipped: Counter[str] = Counter()
    rows = samples = 0

    def write_csv(tmp: str) -> None:
        nonlocal rows, samples
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            writer = csv.writer(f, delimiter="\t", lineterminator="\n")
            writer.writerow(COLUMNS)
            for row in tqdm(build.rows(split, ROW_COLUMNS), total=build.rows_per_split[split], desc=f"csv {split}",
                            unit="row", disable=quiet):
                got, why = row_samples(row, strategy)
                if why:
                    skipped[why] += 1
                    continue
                rows += 1
                image = folder / f"{got[0].meta['id']}.{got[0].ext}"
                _write_image(image, got[0].image)
                for s in got:
                    m = s.meta
                    writer.writerow([str(image), s.text, s.key, m["dataset"], m["organ"], m["label"] or "",
                                     m["caption_source"]])
                    samples += 1

    atomic_write(target, write_csv)
    state.record(csv_name(split), {"bytes": target.stat().st_size, "sha256": file_sha256(target), "samples": samples})
    return {"rows": rows, "samples": samples, "csv": csv_name(split), "images": f"images/{split}",
            "skipped_rows": dict(sorted(skipped.items()))}


def export(
    build: Build, state: ExportState, strategy: str, splits: Sequence[str], quiet: bool
) -> dict[str, Any]:
    summary: dict[str, Any] = {"format": "csv", "strategy": strategy, "splits": {},
                               "csv_img_key": IMAGE_KEY, "csv_caption_key": CAPTION_KEY, "csv_separator": "\t"}
    previous = (state.summary.get("splits") or {}) if state.summary else {}
    for split in splits:
        if state.done(csv_name(split)) and split in previous:
            summary["splits"][split] = previous[split]
            continue
        summary["splits"][split] = _export_split(build, state, strategy, split, quiet)
        state.summary = summary
        state.save()
    return summary
