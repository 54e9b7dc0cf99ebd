"""DICOM and NIfTI builds: no identifier reaches the output; burned-in flags; slice axes."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pyarrow.parquet as pq
import pydicom
import pytest

from echocaptions.pipeline import build
from echocaptions.recipe import load_recipe
from echocaptions.synth.layout_dicom_folder import IDENTIFIERS


def _build(root: Path, tmp_path: Path, source: str, *overrides: str):
    tmp_path.mkdir(parents=True, exist_ok=True)
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"name: m\nsources:\n  - {source}\n")
    return build(load_recipe(recipe, data_root=root, out=tmp_path / "out", overrides=list(overrides)), quiet=True)


def _strings(value) -> list[str]:
    if isinstance(value, dict):
        return [s for k, v in value.items() if k != "bytes" for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return [str(value)] if value is not None else []


def test_no_dicom_identifier_reaches_any_output(phantom_root: Path, tmp_path: Path) -> None:
    root = phantom_root / "dicom"
    identifiers: set[str] = set()
    for path in root.rglob("*.dcm"):
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        for tag in IDENTIFIERS:
            value = str(ds.get(tag, "") or "")
            if len(value) >= 4:
                identifiers.add(value)
                identifiers.update(p for p in value.split("^") if len(p) >= 4)
    assert len(identifiers) > 10
    result = _build(
        phantom_root,
        tmp_path,
        "{name: d, layout: dicom, path: dicom, options: {organ: breast, labels_csv: labels.csv}}",
    )
    texts: list[str] = []
    for shard in sorted((result.out / "data").glob("*.parquet")):
        for row in pq.read_table(shard).to_pylist():
            texts.extend(_strings(row))
            assert not any(i.encode() in row["image"]["bytes"] for i in identifiers)
    for name in ("stats.json", "rejects.jsonl", "README.md"):
        texts.append((result.out / name).read_text())
    blob = "\n".join(texts)
    leaked = sorted(i for i in identifiers if i in blob)
    assert leaked == []


def test_burned_in_annotation_is_flagged_or_dropped(phantom_root: Path, tmp_path: Path) -> None:
    source = "{name: d, layout: dicom, path: dicom, options: {organ: breast, labels_csv: labels.csv}}"
    flagged = _build(phantom_root, tmp_path / "a", source)
    rows = [r for s in sorted((flagged.out / "data").glob("*.parquet")) for r in pq.read_table(s).to_pylist()]
    marked = [r["source_path"] for r in rows if r["caption_meta"]["flags"] == "burned_in_annotation"]
    assert marked == ["series_1/IM_0002.dcm"]
    dropped = _build(phantom_root, tmp_path / "b", source, "image.drop_burned_in=true")
    reasons = [json.loads(line)["reason"] for line in dropped.rejects_path.read_text().splitlines()]
    assert any(r.startswith("burned-in annotation") for r in reasons)
    assert dropped.stats["rows"] == flagged.stats["rows"] - 1


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_nifti_slices_along_the_chosen_axis(tmp_path: Path, axis: int) -> None:
    data = (np.arange(20 * 30 * 40) % 2999).astype(np.int16).reshape(20, 30, 40)
    (tmp_path / "data" / "vols").mkdir(parents=True)
    nib.save(nib.Nifti1Image(data, np.eye(4)), tmp_path / "data" / "vols" / "v.nii.gz")
    source = f"{{name: n, layout: nifti, path: vols, options: {{organ: liver, axis: {axis}, max_slices: 3}}}}"
    result = _build(tmp_path / "data", tmp_path, source, "dedup.enabled=false", "image.max_side=null")
    rows = [r for s in sorted((result.out / "data").glob("*.parquet")) for r in pq.read_table(s).to_pylist()]
    shape = [d for i, d in enumerate(data.shape) if i != axis]
    assert result.stats["rows"] == 3
    assert {(r["width"], r["height"]) for r in rows} == {(shape[0], shape[1])}


def test_crop_sector_trims_black_borders(phantom_root: Path, tmp_path: Path) -> None:
    source = "{name: a, layout: aul, path: AUL}"
    plain = _build(phantom_root, tmp_path / "plain", source, "image.max_side=null")
    cropped = _build(phantom_root, tmp_path / "crop", source, "image.max_side=null", "image.crop_sector=true")
    def sizes(result):
        return {
            r["source_path"]: (r["width"], r["height"])
            for s in sorted((result.out / "data").glob("*.parquet"))
            for r in pq.read_table(s, columns=["source_path", "width", "height"]).to_pylist()
        }
    before, after = sizes(plain), sizes(cropped)
    assert before.keys() == after.keys()
    assert all(after[k][0] <= before[k][0] and after[k][1] <= before[k][1] for k in before)
    assert sum(after[k][0] * after[k][1] for k in after) < 0.95 * sum(before[k][0] * before[k][1] for k in before)
