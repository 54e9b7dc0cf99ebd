"""BrEaST-Lesions-USG on its real metadata: the TCIA clinical workbook, real file names, tiny pixels.

``tests/data/real/breast_lesions_usg`` holds a byte copy of the clinical
workbook and the list of file names of the published images-and-masks folder
(see the README there). The tree built here has every real name and the whole
workbook; only the pixels are synthetic. Expected values come from the
workbook read with openpyxl and the tables below, not through the adapter.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from openpyxl import load_workbook

from echocaptions.sources.breast_lesions_usg import IMAGES
from tests.sources.conftest import read
from tests.sources.test_real_bus_bra import build_and_check, write_tree

DATA = Path(__file__).resolve().parents[1] / "data" / "real" / "breast_lesions_usg"
WORKBOOK = "BrEaST-Lesions-USG-clinical-data-Dec-15-2023.xlsx"
SHEET = "BrEaST-Lesions-USG clinical dat"
FOLDER = "BrEaST-Lesions-USG"

# Every distinct value of the columns the adapter reads (256 rows): value -> (count, what it becomes).
CLASSIFICATION = {"benign": (154, "benign"), "malignant": (98, "malignant"), "normal": (4, "normal")}
BIRADS = {"4c": (49, "4c"), "4b": (46, "4b"), 5: (46, "5"), "4a": (44, "4a"), 3: (37, "3"), 2: (30, "2"),
          1: (4, "1")}  # numbers and text in one column
TISSUE = {  # -> (birads_tissue, extra["lactating"])
    "heterogeneous: predominantly fat": (79, ("heterogeneous", False)),
    "heterogeneous: predominantly fibroglandular": (55, ("heterogeneous", False)),
    "not available": (49, (None, None)),
    "homogeneous: fibroglandular": (42, ("homogeneous_fibroglandular", False)),
    "homogeneous: fat": (24, ("homogeneous_fat", False)),
    "lactating&homogeneous: fibroglandular": (4, ("homogeneous_fibroglandular", True)),
    "lactating": (1, (None, True)),
    "lactating&heterogeneous: predominantly fibroglandular": (1, ("heterogeneous", True)),
    "lactating&heterogeneous: predominantly fat": (1, ("heterogeneous", True)),
}
SHAPE = {"irregular": (140, "irregular"), "oval": (97, "oval"), "round": (15, "round"),
         "not applicable": (4, None)}
MARGIN = {
    "circumscribed": (115, "circumscribed"),
    "not circumscribed - indistinct": (52, "indistinct"),
    "not circumscribed - angular&indistinct": (23, "angular"),
    "not circumscribed - spiculated&indistinct": (11, "spiculated"),
    "not circumscribed - microlobulated&indistinct": (11, "microlobulated"),
    "not circumscribed - microlobulated": (10, "microlobulated"),
    "not circumscribed - spiculated&microlobulated&indistinct": (6, "spiculated"),
    "not circumscribed - spiculated&angular&indistinct": (5, "spiculated"),
    "not circumscribed - spiculated": (5, "spiculated"),
    "not applicable": (4, None),
    "not circumscribed - spiculated&angular&microlobulated&indistinct": (4, "spiculated"),
    "not circumscribed - angular": (3, "angular"),
    "not circumscribed - angular&microlobulated&indistinct": (3, "angular"),
    "not circumscribed - spiculated&angular": (2, "spiculated"),
    "not circumscribed - angular&microlobulated": (2, "angular"),
}
ECHOGENICITY = {"hypoechoic": (148, "hypoechoic"), "heterogeneous": (57, "heterogeneous"),
                "anechoic": (15, "anechoic"), "isoechoic": (12, "isoechoic"),
                "complex cystic/solid": (11, "complex_cystic_solid"), "hyperechoic": (9, "hyperechoic"),
                "not applicable": (4, None)}
POSTERIOR = {"no": (159, "none"), "shadowing": (50, "shadowing"), "enhancement": (36, "enhancement"),
             "combined": (7, "combined"), "not applicable": (4, None)}
CALCIFICATIONS = {"no": (225, "none"), "in a mass": (23, "in_mass"), "not applicable": (4, None),
                  "intraductal": (2, "intraductal"), "indefinable": (2, "indeterminate")}
HALO = {"no": (197, False), "yes": (55, True), "not applicable": (4, None)}
SKIN_THICKENING = {"no": (241, False), "yes": (15, True)}
VERIFICATION = {"confirmed by biopsy": (197, "biopsy"), "confirmed by follow-up care": (55, "follow_up"),
                "not applicable": (4, None)}
COLUMNS = {
    "Classification": CLASSIFICATION, "BIRADS": BIRADS, "Tissue_composition": TISSUE, "Shape": SHAPE,
    "Margin": MARGIN, "Echogenicity": ECHOGENICITY, "Posterior_features": POSTERIOR,
    "Calcifications": CALCIFICATIONS, "Halo": HALO, "Skin_thickening": SKIN_THICKENING,
    "Verification": VERIFICATION,
}
FINDINGS = {"Shape": "birads_shape", "Margin": "birads_margin", "Echogenicity": "birads_echo_pattern",
            "Posterior_features": "birads_posterior", "Calcifications": "birads_calcifications",
            "BIRADS": "birads_category"}


def workbook_rows() -> list[dict[str, object]]:
    wb = load_workbook(DATA / WORKBOOK, read_only=True, data_only=True)
    try:
        assert wb.sheetnames == [SHEET, "Data Dictionary"]
        lines = list(wb[SHEET].iter_rows(values_only=True))
    finally:
        wb.close()
    return [dict(zip(lines[0], line, strict=True)) for line in lines[1:]]


def mask_names(row: dict[str, object]) -> list[str]:
    return [n for c in ("Mask_tumor_filename", "Mask_other_filename") for n in str(row[c] or "").split("&") if n]


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The data root: ``BrEaST-Lesions-USG/`` with the workbook and every published image and mask name."""
    root = tmp_path_factory.mktemp("real") / FOLDER
    names = [WORKBOOK, *(DATA / "file_list.txt").read_text().split()]
    write_tree(root, names, {WORKBOOK: DATA / WORKBOOK}, lambda name: "_tumor" in name or "_other" in name)
    return root.parent


def test_published_values_are_the_documented_ones() -> None:
    rows = workbook_rows()
    assert len(rows) == 256 and "Orientation" not in rows[0]
    for column, values in COLUMNS.items():
        assert Counter(row[column] for row in rows) == {v: n for v, (n, _) in values.items()}, column
    assert [row["CaseID"] for row in rows] == list(range(1, 257))
    assert all(row["Image_filename"] == f"case{row['CaseID']:03d}.png" for row in rows)
    assert sum(1 for row in rows if row["Mask_tumor_filename"] is None) == 4  # the normal cases
    others = Counter(len(str(row["Mask_other_filename"]).split("&")) for row in rows if row["Mask_other_filename"])
    assert others == {1: 2, 2: 4, 4: 1}  # 14 _otherK masks in 7 cases
    listed = (DATA / "file_list.txt").read_text().split()
    named = [row["Image_filename"] for row in rows] + [m for row in rows for m in mask_names(row)]
    assert sorted(listed) == sorted(f"{IMAGES}/{n}" for n in named)
    wb = load_workbook(DATA / WORKBOOK, read_only=True)
    try:  # the dictionary spells the first column Case_ID; the data sheet says CaseID
        dictionary = [line[0] for line in wb["Data Dictionary"].iter_rows(values_only=True)][1:]
    finally:
        wb.close()
    assert ["CaseID" if c == "Case_ID" else c for c in dictionary] == list(rows[0])


def test_adapter_maps_every_row(tree: Path) -> None:
    rows = {f"{IMAGES}/{row['Image_filename']}": row for row in workbook_rows()}
    items, rejects = read("breast_lesions_usg", tree / FOLDER)
    assert rejects == []
    assert sorted(i.source_path for i in items) == sorted(rows)
    for item in items:
        row = rows[item.source_path]
        assert item.label == CLASSIFICATION[row["Classification"]][1]
        assert item.patient_id == str(row["CaseID"])
        tissue, lactating = TISSUE[row["Tissue_composition"]][1]
        expected = {key: COLUMNS[column][row[column]][1] for column, key in FINDINGS.items()}
        assert item.findings == {"birads_tissue": tissue, **expected}
        assert item.extra["lactating"] is lactating
        assert item.extra["tissue_composition"] == row["Tissue_composition"]
        assert item.extra["indefinable"] == (["Calcifications"] if row["Calcifications"] == "indefinable" else [])
        assert item.extra["halo"] is HALO[row["Halo"]][1]
        assert item.extra["skin_thickening"] is SKIN_THICKENING[row["Skin_thickening"]][1]
        assert item.extra["verification"] == VERIFICATION[row["Verification"]][1]
        assert item.extra["masks"] == [f"{IMAGES}/{m}" for m in mask_names(row)] and item.extra["missing_masks"] == []
        assert "age" not in item.extra
    assert Counter(i.label for i in items) == {k: n for k, (n, _) in CLASSIFICATION.items()}
    assert sorted(i.patient_id for i in items if i.extra["indefinable"]) == ["58", "73"]
    assert sorted(i.patient_id for i in items if i.extra["lactating"] and i.findings["birads_tissue"] is None) == ["31"]


def test_real_build(tree: Path, tmp_path: Path) -> None:
    labels = {f"{IMAGES}/{row['Image_filename']}": str(row["Classification"]) for row in workbook_rows()}
    result, rows = build_and_check(tree, "breast_lesions_usg", FOLDER, tmp_path / "out", labels)
    assert result.stats["rejected"] == 0
    assert len(rows) == 256 and len({r["patient_id"] for r in rows}) == 256
    by_path = {r["source_path"]: r for r in rows}
    assert by_path[f"{IMAGES}/case058.png"]["findings"]["birads_calcifications"] == "indeterminate"
    assert by_path[f"{IMAGES}/case045.png"]["findings"]["birads_tissue"] == "homogeneous_fibroglandular"
