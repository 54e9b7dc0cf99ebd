"""BUS-BRA on its real metadata: the published bus_data.csv and fold files, real file names, tiny pixels.

``tests/data/real/bus_bra`` holds byte copies of the three CSV files and the
list of file names of the published ``BUSBRA/`` folder (see the README there).
The tree built here has every real name and every real row; only the pixels
are synthetic (16x16 noise, distinct per file, so no image is a duplicate).
Expected values are computed from the CSV files with the ``csv`` module, not
through the adapter.
"""

from __future__ import annotations

import csv
import json
import re
import shutil
import zlib
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import datasets
import numpy as np
import pytest
from PIL import Image

from echocaptions.pipeline import BuildResult, build
from echocaptions.recipe import load_recipe
from echocaptions.schema import LABEL_NAMES
from tests.sources.conftest import read

DATA = Path(__file__).resolve().parents[1] / "data" / "real" / "bus_bra"
TABLES = ("bus_data.csv", "5-fold-cv.csv", "10-fold-cv.csv")

# Every distinct value of the published bus_data.csv (1,875 rows), with its count.
PATHOLOGY = {"benign": 1268, "malignant": 607}
BIRADS = {"2": 562, "3": 463, "4": 693, "5": 157}
DEVICE = {"GE Logiq 7 @10-14MHz": 902, "GE Logiq 5 @10-12MHz": 809, "Toshiba Aplio 300 @12-14 MHz": 139,
          "U-Systems @10-14MHz": 25}
SIDE = {"left": 811, "right": 811, "single": 253}
SUFFIX_SIDE = {"l": "left", "r": "right", "s": "single"}
ID_PATTERN = re.compile(r"bus_(\d{4})-([lrs])")  # the Case number, zero-padded, and the view
CASES = 1064  # patients: 811 with two views (-l, -r), 253 with one (-s)
HISTOLOGY = {
    "fibroadenoma", "invasive ductal carcinoma", "cyst", "fibrocystic changes", "invasive lobular carcinoma",
    "intraductal papilloma", "sclerosing adenosis", "hyperplasia", "lipoma", "phyllodes tumor",
    "papillary carcinoma", "mastitis", "mucinous carcinoma", "fat necrosis", "hamartoma", "proliferative lesions",
    "lymphoma", "metaplasia apocrina", "adenocarcinoma", "lobular carcinoma in situ", "ductal carcinoma in situ",
    "medullary carcinoma", "galactocele", "ductal hyperplasia", "lymph node", "fibrosis", "lobular atrophy",
    "duct ectasia",
}


def table(name: str) -> list[dict[str, str]]:
    with open(DATA / name, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def tiny_png(path: Path, mask: bool = False) -> None:
    """16x16 grayscale noise seeded by the file's name: distinct pixels per file, same bytes every run."""
    rng = np.random.default_rng(zlib.crc32(path.name.encode()))
    pixels = rng.integers(0, 2, (16, 16)) * 255 if mask else rng.integers(0, 256, (16, 16))
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels.astype(np.uint8), "L").save(path)


def write_tree(root: Path, names: list[str], copies: dict[str, Path], is_mask: Callable[[str], bool]) -> None:
    """Every listed file under ``root``: metadata as byte copies, PNGs as tiny noise, the rest as text."""
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if Path(name).name in copies:
            shutil.copyfile(copies[Path(name).name], path)
        elif name.endswith(".png"):
            tiny_png(path, mask=is_mask(name))
        else:
            path.write_text("placeholder\n")


def build_and_check(data_root: Path, layout: str, folder: str, out: Path,
                    labels_by_path: dict[str, str]) -> tuple[BuildResult, list[dict]]:
    """A real build of one source: every item read is a row or a reject, labels match the metadata per
    split, and no patient spans two splits. Returns the result and the published rows."""
    recipe = out.parent / f"{layout}.yaml"
    recipe.write_text(f"name: real\nsources:\n  - {{name: src, layout: {layout}, path: {folder}}}\n"
                      "image: {max_side: 32}\n")
    result = build(load_recipe(recipe, data_root=data_root, out=out), quiet=True)
    stats = result.stats
    source = stats["sources"]["src"]
    assert source["kept"] + source["rejected"] == source["read"] == len(labels_by_path)
    assert stats["rows"] + stats["rejected"] == stats["read"]
    ds = datasets.load_dataset(str(result.out))
    rows = [dict(row, split=split) for split, part in ds.items() for row in part.remove_columns("image")]
    assert len(rows) == stats["rows"] == source["kept"]
    for split in ds:
        published = Counter(LABEL_NAMES[r["label"]] for r in rows if r["split"] == split)
        expected = Counter(labels_by_path[r["source_path"]] for r in rows if r["split"] == split)
        assert published == expected
        assert {f"breast/{k}": v for k, v in published.items()} == stats["class_balance"][split]
    split_of: dict[str, set[str]] = {}
    for r in rows:
        assert r["patient_id"] is not None and r["patient_id"].startswith(f"{layout}:")
        split_of.setdefault(r["patient_id"], set()).add(r["split"])
    assert all(len(splits) == 1 for splits in split_of.values())
    rejects = [json.loads(line) for line in (result.out / "rejects.jsonl").read_text().splitlines()]
    assert len(rejects) == stats["rejected"]
    return result, rows


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The data root: ``BUSBRA/`` with every published name (1,875 images, 1,875 masks, CSVs, LICENSE.txt)."""
    root = tmp_path_factory.mktemp("real")
    names = (DATA / "file_list.txt").read_text().split()
    write_tree(root, names, {name: DATA / name for name in TABLES}, lambda name: "/Masks/" in name)
    return root


def test_published_values_are_the_documented_ones() -> None:
    rows = table("bus_data.csv")
    assert list(rows[0]) == ["ID", "Case", "Histology", "Pathology", "BIRADS", "Device", "Width", "Height",
                             "Side", "BBOX"]
    assert len(rows) == 1875
    assert Counter(r["Pathology"] for r in rows) == PATHOLOGY
    assert Counter(r["BIRADS"] for r in rows) == BIRADS
    assert Counter(r["Device"] for r in rows) == DEVICE
    assert Counter(r["Side"] for r in rows) == SIDE
    assert {r["Histology"] for r in rows} == HISTOLOGY
    for r in rows:
        match = ID_PATTERN.fullmatch(r["ID"])
        assert match and int(match[1]) == int(r["Case"]) and SUFFIX_SIDE[match[2]] == r["Side"]
        assert re.fullmatch(r"\[\d+,\d+,\d+,\d+\]", r["BBOX"]) and r["Width"].isdigit() and r["Height"].isdigit()
    views = Counter(r["Case"] for r in rows)
    assert len(views) == CASES and Counter(views.values()) == {2: 811, 1: 253}
    birads_per_case = {case: {r["BIRADS"] for r in rows if r["Case"] == case} for case, n in views.items() if n == 2}
    assert [case for case, b in birads_per_case.items() if len(b) > 1] == ["856"]
    for name, k in (("5-fold-cv.csv", 5), ("10-fold-cv.csv", 10)):
        folds = table(name)
        assert list(folds[0]) == ["ID", "Pathology", "kFold", *[f"valid_{j}" for j in range(1, k + 1)]]
        assert [(f["ID"], f["Pathology"]) for f in folds] == [(r["ID"], r["Pathology"]) for r in rows]
        assert {f["kFold"] for f in folds} == {str(j) for j in range(1, k + 1)}
        for f in folds:
            assert [j for j in range(1, k + 1) if f[f"valid_{j}"] == "NaN"] == [int(f["kFold"])]
            assert {f[f"valid_{j}"] for j in range(1, k + 1)} <= {"0", "1", "NaN"}
    listed = (DATA / "file_list.txt").read_text().split()
    assert sorted(n for n in listed if n.startswith("BUSBRA/Images/")) == sorted(
        f"BUSBRA/Images/{r['ID']}.png" for r in rows)
    assert sorted(n for n in listed if n.startswith("BUSBRA/Masks/")) == sorted(
        f"BUSBRA/Masks/mask_{r['ID'].removeprefix('bus_')}.png" for r in rows)
    assert sorted(n for n in listed if n.count("/") == 1) == sorted(
        ["BUSBRA/LICENSE.txt", *(f"BUSBRA/{t}" for t in TABLES)])


def test_adapter_reads_every_row(tree: Path) -> None:
    rows = {r["ID"]: r for r in table("bus_data.csv")}
    folds = {k: {f["ID"]: f["kFold"] for f in table(f"{k}-fold-cv.csv")} for k in ("5", "10")}
    items, rejects = read("bus_bra", tree / "BUSBRA")
    assert rejects == []
    assert sorted(Path(i.source_path).stem for i in items) == sorted(rows)
    for item in items:
        row = rows[Path(item.source_path).stem]
        assert item.source_path == f"Images/{row['ID']}.png"
        assert (item.label, item.patient_id) == (row["Pathology"], row["Case"])
        assert item.findings == {"birads_category": row["BIRADS"]}
        assert item.extra["side"] == row["Side"] and item.extra["device"] == row["Device"]
        assert (item.extra["histology"], item.extra["bbox"]) == (row["Histology"], row["BBOX"])
        assert (item.extra["width"], item.extra["height"]) == (row["Width"], row["Height"])
        assert item.extra["folds"] == {k: folds[k][row["ID"]] for k in folds}
        assert item.extra["masks"] == [f"Masks/mask_{row['ID'].removeprefix('bus_')}.png"]
    assert Counter(i.label for i in items) == PATHOLOGY
    assert Counter(i.findings["birads_category"] for i in items) == BIRADS
    assert len({i.patient_id for i in items}) == CASES
    outer, _ = read("bus_bra", tree)  # the data root, one level above BUSBRA/
    assert [i.id for i in outer] == [i.id for i in items]


def test_real_build(tree: Path, tmp_path: Path) -> None:
    labels = {f"Images/{r['ID']}.png": r["Pathology"] for r in table("bus_data.csv")}
    result, rows = build_and_check(tree, "bus_bra", "BUSBRA", tmp_path / "out", labels)
    assert result.stats["rejected"] == 0  # distinct pixels: nothing is a duplicate
    assert Counter(LABEL_NAMES[r["label"]] for r in rows) == PATHOLOGY
    assert len(result.stats["splits"]) == 3  # 1,064 patients spread over train, validation and test
    patients = Counter(r["patient_id"] for r in rows)
    assert len(patients) == CASES and Counter(patients.values()) == {2: 811, 1: 253}
