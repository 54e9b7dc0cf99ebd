"""Fatty liver (Byra): one MAT file, one item per frame, grade from the biopsy fat %."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from echocaptions.imaging.readers import reader_for
from echocaptions.sources import SourceError, get_source_class
from echocaptions.sources.fatty_liver import MAT_NAME, steatosis_grade
from echocaptions.synth.layout_fatty_liver import save_mat_v5
from tests.sources.conftest import PER_CLASS, read, reasons


def build_one(layout: str, root: Path, tmp_path: Path, options: str = "") -> tuple[dict, object]:
    """Build a one-source recipe over ``root``; return the stats and the loaded dataset."""
    import datasets

    from echocaptions.pipeline import build
    from echocaptions.recipe import load_recipe

    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        f"name: t\nsources:\n  - {{name: x, layout: {layout}, path: {root.name}{options}}}\n"
        "image: {max_side: 64}\nvideo: {fps: 5, max_frames: 2}\n"
        "output: {rows_per_shard: 40, shard_items: 16}\n"
    )
    result = build(load_recipe(recipe, data_root=root.parent, out=tmp_path / "out"), quiet=True)
    return result.stats, datasets.load_dataset(str(result.out))


def test_phantom_items(phantom: dict[str, Path], no_pixels: None) -> None:
    items, rejects = read("fatty_liver", phantom["fatty_liver"])
    assert rejects == []
    assert len(items) == 2 * PER_CLASS * 10
    assert Counter(i.label for i in items) == {"normal": PER_CLASS * 10, "steatosis": PER_CLASS * 10}
    assert len({i.id for i in items}) == len(items)
    assert [i.frame for i in items] == list(range(len(items)))
    data = scipy.io.loadmat(phantom["fatty_liver"] / MAT_NAME)["data"][0]
    for item in items:
        patient = data[item.frame // 10]
        assert item.patient_id == str(int(patient["id"][0, 0]))
        assert item.label == ("steatosis" if patient["class"][0, 0] == 1 else "normal")
        fat = float(patient["fat"][0, 0])
        assert item.findings == {"liver_steatosis": steatosis_grade(fat)}
        assert item.extra["fat_percent"] == pytest.approx(fat)
        assert item.source_path == MAT_NAME and not item.expand
    assert {i.findings["liver_steatosis"] for i in items if i.label == "normal"} == {"S0"}
    assert Counter(i.patient_id for i in items) == {str(p): 10 for p in range(1, 2 * PER_CLASS + 1)}


@pytest.mark.parametrize(("fat", "grade"), [(0.0, "S0"), (4.9, "S0"), (5.0, "S1"), (33.0, "S1"),
                                            (33.5, "S2"), (66.0, "S2"), (66.1, "S3"), (90.0, "S3")])
def test_steatosis_cut_offs(fat: float, grade: str) -> None:
    assert steatosis_grade(fat) == grade


def test_reader_returns_the_frame_an_item_names(phantom: dict[str, Path]) -> None:
    items, _ = read("fatty_liver", phantom["fatty_liver"])
    data = scipy.io.loadmat(phantom["fatty_liver"] / MAT_NAME)["data"][0]
    for item in (items[0], items[13], items[-1]):
        path = Path(item.path)
        img = reader_for(path).read(path, item.frame)
        assert img.mode == "L"
        expected = data[item.frame // 10]["images"][item.frame % 10]
        assert np.array_equal(np.asarray(img), expected)


def test_broken_patients_become_rejects(broken_phantom: dict[str, Path], no_pixels: None) -> None:
    items, rejects = read("fatty_liver", broken_phantom["fatty_liver"])
    assert len(items) == 2 * PER_CLASS * 10
    why = reasons(rejects)
    n = 2 * PER_CLASS
    assert why[f"{MAT_NAME} data({n + 1})"] == "class 7.0 is not 0 (normal) or 1 (fatty)"
    assert why[f"{MAT_NAME} data({n + 2})"] == "images is not a stack of 2-D frames"


def test_other_variables_or_fields_are_listed(tmp_path: Path) -> None:
    save_mat_v5(tmp_path / MAT_NAME, {"images": np.zeros((2, 4, 4), np.uint8), "labels": np.ones(2)})
    items, rejects = read("fatty_liver", tmp_path)
    assert items == [] and len(rejects) == 1
    assert "no variable 'data'" in rejects[0].reason and "['images', 'labels']" in rejects[0].reason
    save_mat_v5(tmp_path / MAT_NAME, {"data": {"id": 1.0, "class": 0.0, "images": np.zeros((2, 4, 4))}})
    _, rejects = read("fatty_liver", tmp_path)
    assert "lacks fields ['fat']" in rejects[0].reason and "['class', 'id', 'images']" in rejects[0].reason


def test_bad_root_names_layout_and_publisher(tmp_path: Path) -> None:
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "liver.mat").write_bytes(b"MATLAB")
    for root in (tmp_path / "missing", tmp_path / "other"):
        with pytest.raises(SourceError) as err:
            get_source_class("fatty_liver")("fl", root).check()
        message = str(err.value)
        assert "'fatty_liver'" in message and MAT_NAME in message and "1009146" in message
    assert "liver.mat" in message


def test_build_opens_with_datasets(phantom: dict[str, Path], tmp_path: Path) -> None:
    stats, ds = build_one("fatty_liver", phantom["fatty_liver"], tmp_path)
    assert stats["read"] == 2 * PER_CLASS * 10
    assert stats["rows"] > 0 and stats["rows"] + stats["rejected"] == stats["read"]
    assert sum(len(part) for part in ds.values()) == stats["rows"]
