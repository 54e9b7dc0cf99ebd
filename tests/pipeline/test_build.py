"""End-to-end builds of every bundled recipe on phantom data."""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import pytest
from huggingface_hub import DatasetCard

from echocaptions.recipe import list_recipes
from echocaptions.schema import LABEL_NAMES, ORGANS
from tests.pipeline.helpers import parquet_digests, run

RECIPES = ["breast", "thyroid", "liver", "lung", "multiorgan"]


def test_every_bundled_recipe_is_covered() -> None:
    assert sorted([*RECIPES, "demo"]) == list_recipes()


@pytest.mark.parametrize("name", RECIPES)
def test_recipe_builds_and_loads(name: str, phantom_root: Path, tmp_path: Path) -> None:
    result = run(name, phantom_root, tmp_path / name)
    stats = result.stats
    assert stats["rows"] > 0
    assert stats["rows"] + stats["rejected"] == stats["read"]
    ds = datasets.load_dataset(str(result.out))
    assert set(ds) == set(stats["splits"])
    total = 0
    for split, part in ds.items():
        assert len(part) == stats["splits"][split]
        total += len(part)
        for row in part:
            img = row["image"]
            assert img.size == (row["width"], row["height"])
            assert img.mode in ("L", "RGB")
            assert max(img.size) <= 128
            assert row["caption"]
            assert row["caption_source"] in {c["source"] for c in row["captions"]}
            assert row["split"] == split
    assert total == stats["rows"]
    organs = {ORGANS[i] for part in ds.values() for i in part["organ"]}
    assert organs == set(stats["organs"])


def test_rows_and_rejects_account_for_every_file(phantom_root: Path, tmp_path: Path) -> None:
    """Breast: every BUSI image file is a row or a reject (masks are not images)."""
    result = run("breast", phantom_root, tmp_path / "b")
    busi_images = [
        p
        for p in (phantom_root / "BUSI").rglob("*.png")
        if "_mask" not in p.name
    ]
    busi = result.stats["sources"]["busi"]
    assert busi["kept"] + busi["rejected"] == len(busi_images)


def test_splits_never_share_a_patient_or_pixels(phantom_root: Path, tmp_path: Path) -> None:
    result = run("multiorgan", phantom_root, tmp_path / "m")
    ds = datasets.load_dataset(str(result.out))
    seen_patient: dict[tuple[str, str], str] = {}
    seen_sha: dict[str, str] = {}
    for split, part in ds.items():
        for dataset, pid, sha in zip(part["dataset"], part["patient_id"], part["sha256"], strict=True):
            if pid is not None:
                assert seen_patient.setdefault((dataset, pid), split) == split
            assert sha not in seen_sha, "identical pixels published twice"
            seen_sha[sha] = split


def test_card_validates_and_matches_files(phantom_root: Path, tmp_path: Path) -> None:
    result = run("thyroid", phantom_root, tmp_path / "t")
    card = DatasetCard.load(result.out / "README.md")
    data = card.data.to_dict()
    assert data["task_categories"] == ["image-to-text", "zero-shot-image-classification"]
    assert data["size_categories"] == ["n<1K"]
    assert data["configs"][0]["data_files"]
    for entry in data["configs"][0]["data_files"]:
        assert list(result.out.glob(entry["path"])), entry
    for entry in data["configs"][1:]:
        assert entry["config_name"] in ("report_template", "template_only")
        assert all(list(result.out.glob(f["path"])) for f in entry["data_files"]), entry
    info = next(i for i in data["dataset_info"] if i["config_name"] == "default")
    names = [f["name"] for f in info["features"]]
    assert names[:2] == ["id", "image"]
    label = next(f for f in info["features"] if f["name"] == "label")
    assert list(label["dtype"]["class_label"]["names"].values()) == list(LABEL_NAMES)
    stats = json.loads((result.out / "stats.json").read_text())
    for info in data["dataset_info"]:
        assert {s["name"]: s["num_examples"] for s in info["splits"]} == stats["splits"]


def test_same_recipe_inputs_and_seed_give_identical_parquet(phantom_root: Path, tmp_path: Path) -> None:
    one = run("multiorgan", phantom_root, tmp_path / "one", workers=1)
    two = run("multiorgan", phantom_root, tmp_path / "two", workers=2)
    assert parquet_digests(one.out) == parquet_digests(two.out)
    assert (one.out / "rejects.jsonl").read_bytes() == (two.out / "rejects.jsonl").read_bytes()
    other = run("multiorgan", phantom_root, tmp_path / "three", "seed=7")
    assert parquet_digests(other.out) != parquet_digests(one.out)


def test_reports_are_deidentified_captioned_and_read_for_findings(phantom_root: Path, tmp_path: Path) -> None:
    import re

    annotation = json.loads((phantom_root / "ultrasound_reports" / "annotation.json").read_text())
    raw = [study["finding"] for split in annotation.values() for study in split]
    result = run("liver", phantom_root, tmp_path / "liver")
    ds = datasets.load_dataset(str(result.out))
    rows = [r for part in ds.values() for r in part.remove_columns("image")]
    reports = [r for r in rows if r["dataset"] == "reports"]
    assert reports and all(r["report"] for r in reports)
    assert {r["report_language"] for r in reports} == {"en"}
    assert any(r["caption_source"] == "report" for r in reports)
    assert any(r["findings_source"] and "report" in r["findings_source"] for r in reports)
    published = "\n".join(r["report"] + "\n" + r["caption"] for r in reports)
    assert "[NAME]" in published or "[DATE]" in published
    for text in raw:
        for mrn in re.findall(r"MRN[:#]?\s*([0-9]{6,})", text):
            assert mrn not in published
    assert result.stats["reports"]["phi_removed"]
    withheld = run("liver", phantom_root, tmp_path / "w", "reports.publish=false")
    ds = datasets.load_dataset(str(withheld.out))
    assert all(r is None for part in ds.values() for r in part["report"])
