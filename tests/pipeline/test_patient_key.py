"""One patient key per build: datasets' own ids never merge two datasets' patients."""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from pathlib import Path

import datasets
import numpy as np
from PIL import Image

from echocaptions.pipeline import build
from echocaptions.recipe import load_recipe
from echocaptions.schema import build_key


def _manifest(root: Path, dataset: str, patients: list[str], seed: int) -> None:
    """A manifest source whose rows name the given patients, two images each."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True)
    with (root / "manifest.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "organ", "label", "patient_id", "study_id", "dataset"])
        for p in patients:
            for k in range(2):
                name = f"p{p}_{k}.png"
                Image.fromarray(rng.integers(0, 255, (32, 40), dtype=np.uint8)).save(root / name)
                writer.writerow([name, "breast", ("benign", "malignant")[int(p) % 2], p, f"s{p}", dataset])


def test_build_key() -> None:
    assert build_key("ddti", "7") == "ddti:7"
    assert build_key("bus_bra", "7") != build_key("ddti", "7")
    assert build_key("ddti", None) is None
    assert build_key("ddti", "") is None


def test_colliding_patient_ids_of_two_datasets_stay_two_patients(tmp_path: Path) -> None:
    patients = [str(i) for i in range(1, 11)]
    _manifest(tmp_path / "data" / "a", "alpha", patients, seed=1)
    _manifest(tmp_path / "data" / "b", "beta", patients, seed=2)
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "name: k\nsources:\n"
        "  - {name: a, layout: manifest, path: a}\n"
        "  - {name: b, layout: manifest, path: b}\n"
        "splits: {train: 0.5, validation: 0.0, test: 0.5}\n"
        "dedup: {enabled: false}\n"
    )
    result = build(load_recipe(recipe, data_root=tmp_path / "data", out=tmp_path / "out"), quiet=True)
    ds = datasets.load_dataset(str(result.out))
    splits_of: dict[str, set[str]] = defaultdict(set)
    datasets_of: dict[str, set[str]] = defaultdict(set)
    rows = 0
    for split, part in ds.items():
        for dataset, pid, sid in zip(part["dataset"], part["patient_id"], part["study_id"], strict=True):
            rows += 1
            own = pid.split(":", 1)
            assert own[0] == dataset and own[1] in patients, pid
            assert sid == f"{dataset}:s{own[1]}"
            splits_of[pid].add(split)
            datasets_of[pid].add(dataset)
    assert rows == 40
    assert len(splits_of) == 20, "the same number from two datasets must be two patients"
    assert all(len(v) == 1 for v in splits_of.values()), "a patient's images share one split"
    assert all(len(v) == 1 for v in datasets_of.values())
    # Patient 'N' of alpha and of beta are grouped independently: with 10 pairs and a 50/50
    # split, at least one pair lands in two different splits (it would never if merged).
    assert any(splits_of[f"alpha:{p}"] != splits_of[f"beta:{p}"] for p in patients)
    stats = json.loads((result.out / "stats.json").read_text())
    assert stats["leakage"]["patients_across_splits"] == 0
