"""CSV export: image files with the build's bytes, one line per sample, as open_clip's CsvDataset reads it."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from echocaptions.export import MANIFEST, export


def test_csv_lines_and_images_match_the_build(build_dir: Path, tmp_path: Path) -> None:
    result = export(build_dir, "csv", "template_multi", dest=tmp_path / "csv")
    dest = result.dest
    assert sorted(p.name for p in dest.glob("*.csv")) == ["train.csv", "validation.csv"]
    for split in ("train", "validation"):
        rows = []
        for shard in sorted((build_dir / "data").glob(f"{split}-*.parquet")):
            rows += pq.read_table(shard, columns=["id", "image", "captions", "dataset"]).to_pylist()
        table = pd.read_csv(dest / f"{split}.csv", sep="\t")  # as open_clip's CsvDataset reads it
        assert list(table.columns[:2]) == ["filepath", "title"]
        assert len(table) == result.summary["splits"][split]["samples"] == 4 * len(rows)
        for row in rows:
            lines = table[table["id"].str.startswith(row["id"] + "_c")]
            texts = [c["text"] for c in row["captions"] if c["source"] == "template"]
            assert list(lines["title"]) == texts
            assert set(lines["filepath"]) == {str(dest / "images" / split / f"{row['id']}.png")}
            assert Path(lines["filepath"].iloc[0]).read_bytes() == row["image"]["bytes"]
            assert set(lines["dataset"]) == {row["dataset"]}
        assert len(list((dest / "images" / split).iterdir())) == len(rows)


def test_csv_rerun_is_byte_identical_and_skips_finished_splits(build_dir: Path, tmp_path: Path) -> None:
    dest = export(build_dir, "csv", "report_template", dest=tmp_path / "c").dest
    first = {p.name: p.read_bytes() for p in dest.glob("*.csv")}
    manifest = json.loads((dest / MANIFEST).read_text())
    assert manifest["complete"] and set(manifest["files"]) == {"train.csv", "validation.csv"}
    (dest / "validation.csv").unlink()
    image = next((dest / "images" / "train").iterdir())
    stamp = image.stat().st_mtime_ns
    result = export(build_dir, "csv", "report_template", dest=dest)
    assert result.resumed_files == 1
    assert {p.name: p.read_bytes() for p in dest.glob("*.csv")} == first
    assert image.stat().st_mtime_ns == stamp
