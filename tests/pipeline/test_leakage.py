"""A corpus with planted near-duplicates across sources and labels builds leak-free."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import datasets
from PIL import Image

from echocaptions.pipeline import build
from echocaptions.recipe import load_recipe

RECIPE = """name: planted
sources:
  - {name: busi, layout: busi, path: BUSI}
  - {name: copies, layout: imagefolder, path: copies, role: eval, options: {organ: breast}}
"""


def test_planted_duplicates_are_removed_and_nothing_leaks(phantom_root: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(phantom_root / "BUSI", data / "BUSI")
    busi = data / "BUSI" / "Dataset_BUSI_with_GT"
    same = busi / "benign" / "benign (1).png"
    flipped = busi / "benign" / "benign (2).png"
    (data / "copies" / "benign").mkdir(parents=True)
    (data / "copies" / "malignant").mkdir(parents=True)
    img = Image.open(same).convert("L")
    img.resize((img.width * 9 // 10, img.height * 9 // 10)).save(data / "copies" / "benign" / "a.jpg", quality=90)
    Image.open(flipped).convert("L").save(data / "copies" / "malignant" / "b.png")
    recipe_path = tmp_path / "r.yaml"
    recipe_path.write_text(RECIPE)
    result = build(load_recipe(recipe_path, data_root=data, out=tmp_path / "out"), quiet=True)

    rejects = {
        (r["source"], r["path"]): r["reason"] for r in map(json.loads, result.rejects_path.read_text().splitlines())
    }
    assert rejects[("busi", "benign/benign (1).png")].startswith("duplicate_of:copies-")
    assert rejects[("busi", "benign/benign (2).png")].startswith(
        "label_conflict: near-duplicates labelled benign and malignant"
    )
    assert rejects[("copies", "malignant/b.png")].startswith("label_conflict")
    stats = result.stats
    assert stats["leakage"] == {
        "identical_images_across_splits": 0,
        "max_hamming": 4,
        "near_duplicate_clusters_across_splits": 0,
        "patients_across_splits": 0,
    }
    assert stats["near_duplicates"] == {"clusters": 2, "label_conflicts": 1}
    assert stats["splits"]["eval_copies"] == 1
    ds = datasets.load_dataset(str(result.out))
    assert set(ds["eval_copies"]["dataset"]) == {"copies"}
    assert "copies" not in {d for split, part in ds.items() if split != "eval_copies" for d in part["dataset"]}
    for split, balance in stats["class_balance"].items():
        assert sum(balance.values()) == stats["splits"][split]
