"""BrEaST: the clinical workbook drives items; BI-RADS descriptors map to schema codes."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import pytest

from echocaptions.sources import SourceError, get_source_class
from echocaptions.sources.breast_lesions_usg import (
    IMAGES,
    margin_code,
    posterior_code,
    read_clinical,
)
from tests.sources.conftest import PER_CLASS, read, reasons

CSV_HEADER = ("CaseID,Image_filename,Mask_tumor_filename,Mask_other_filename,Age,Tissue_composition,"
              "Shape,Margin,Echogenicity,Posterior_features,Calcifications,BIRADS,Classification\n")
DESCRIPTOR_KEYS = ("birads_shape", "birads_margin", "birads_echo_pattern", "birads_posterior")


def test_phantom_items(phantom: dict[str, Path], no_pixels: None) -> None:
    root = phantom["breast_lesions_usg"]
    items, rejects = read("breast_lesions_usg", root)
    assert rejects == []
    assert Counter(i.label for i in items) == {"benign": PER_CLASS, "malignant": PER_CLASS, "normal": PER_CLASS}
    assert [i.patient_id for i in items] == [str(n) for n in range(1, 3 * PER_CLASS + 1)]
    table = {r["Image_filename"]: r for r in read_clinical(next(root.glob("*.xlsx")))}
    for item in items:
        row = table[Path(item.source_path).name]
        assert item.source_path == f"{IMAGES}/{row['Image_filename']}"
        assert item.label == row["Classification"] and item.findings["birads_category"] == row["BIRADS"]
        assert "age" not in item.extra and all("age" not in k.lower() for k in item.findings)
        case = int(row["CaseID"])
        # The phantom's encodings without a schema code, by case number (see its docstring).
        assert item.extra["lactating"] == (None if case % 6 == 4 else case % 4 == 2)
        assert (item.findings["birads_tissue"] is None) == (case % 6 == 4)
        assert item.extra["tissue_composition"] == row["Tissue_composition"]
        indefinable = item.label != "normal" and case % 5 == 0
        assert item.extra["indefinable"] == (["Calcifications"] if indefinable else [])
        assert (item.findings["birads_calcifications"] is None) == (item.label == "normal")
        assert (item.findings["birads_calcifications"] == "indeterminate") == indefinable
        if item.label == "normal":
            assert item.extra["masks"] == [] and item.findings["birads_shape"] is None
            assert item.extra["halo"] is None and item.extra["verification"] is None
        else:
            assert item.extra["masks"][0] == f"{IMAGES}/{Path(item.source_path).stem}_tumor.png"
            assert all(item.findings[k] for k in DESCRIPTOR_KEYS)
            assert item.extra["halo"] is (row["Halo"] == "yes")
            assert item.extra["verification"] in {"biopsy", "follow_up"}
        assert item.license == "CC-BY-4.0" and item.organ == "breast"
    assert any(len(i.extra["masks"]) == 2 for i in items)  # a benign case with an _other1 mask
    assert any(i.extra["lactating"] and i.findings["birads_tissue"] for i in items)
    assert any(i.extra["indefinable"] for i in items)


def test_descriptor_spellings(tmp_path: Path) -> None:
    (tmp_path / "BrEaST-Lesions-USG-clinical-data.csv").write_text(
        CSV_HEADER
        + "1,case001.png,case001_tumor.png&case001_tumor2.png,,44,heterogeneous,irregular,"
          "not circumscribed - angular&microlobulated&indistinct,complex cystic/solid,"
          "shadowing&enhancement,in a mass,4B,malignant\n"
        + "2,case002.png,case002_tumor.png,,not available,homogeneous: fat,oval,circumscribed,"
          "anechoic,enhancement,no,2,benign\n"
        + "3,case003.png,,,61,lactating,not applicable,not applicable,not applicable,"
          "not applicable,not applicable,1,normal\n"
        + "4,case004.png,case004_tumor.png,,50,lactating&heterogeneous: predominantly fat,round,"
          "not circumscribed - spiculated&angular&microlobulated&indistinct,hyperechoic,no,indefinable,"
          "4c,malignant\n")
    for name in ("case001.png", "case001_tumor.png", "case001_tumor2.png", "case002.png",
                 "case002_tumor.png", "case003.png", "case004.png", "case004_tumor.png"):
        (tmp_path / name).write_bytes(b"png")
    items, rejects = read("breast_lesions_usg", tmp_path)
    assert rejects == []
    one, two, three, four = items
    assert one.findings == {"birads_tissue": "heterogeneous", "birads_shape": "irregular",
                            "birads_margin": "angular", "birads_echo_pattern": "complex_cystic_solid",
                            "birads_posterior": "combined", "birads_calcifications": "in_mass",
                            "birads_category": "4b"}
    assert one.extra["masks"] == ["case001_tumor.png", "case001_tumor2.png"]
    assert two.findings["birads_tissue"] == "homogeneous_fat" and two.findings["birads_posterior"] == "enhancement"
    assert two.findings["birads_calcifications"] == "none" and two.findings["birads_margin"] == "circumscribed"
    assert two.extra["lactating"] is False and two.extra["indefinable"] == []
    assert three.findings["birads_tissue"] is None and three.extra["lactating"] is True
    assert three.findings["birads_shape"] is None and three.label == "normal"
    assert four.findings == {"birads_tissue": "heterogeneous", "birads_shape": "round",
                             "birads_margin": "spiculated", "birads_echo_pattern": "hyperechoic",
                             "birads_posterior": "none", "birads_calcifications": "indeterminate",
                             "birads_category": "4c"}
    assert four.extra["lactating"] is True and four.extra["indefinable"] == ["Calcifications"]
    assert four.extra["tissue_composition"] == "lactating&heterogeneous: predominantly fat"


@pytest.mark.parametrize(("column", "value", "expected"), [
    ("Classification", "suspicious", "['benign', 'malignant', 'normal']"),
    ("BIRADS", "4d", "['0', '1', '2', '3', '4', '4a', '4b', '4c', '5', '6']"),
    ("Tissue_composition", "dense", "optionally after 'lactating&'"),
    ("Tissue_composition", "lactating&homogeneous: fat&heterogeneous", "optionally after 'lactating&'"),
    ("Shape", "lobular", "['irregular', 'oval', 'round']"),
    ("Margin", "not circumscribed - lobulated&angular", "parts ['angular', 'indistinct',"),
    ("Margin", "not circumscribed", "parts ['angular', 'indistinct',"),
    ("Echogenicity", "mixed", "'complex cystic/solid'"),
    ("Posterior_features", "glowing", "['combined', 'enhancement', 'no', 'none', 'shadowing']"),
    ("Calcifications", "coarse", "['in a mass', 'intraductal', 'no', 'none', 'outside of a mass']"),
    ("Shape", "none", "['irregular', 'oval', 'round']"),
    ("Halo", "partial", "['no', 'yes']"),
    ("Skin_thickening", "maybe", "['no', 'yes']"),
    ("Verification", "confirmed by MRI", "['confirmed by biopsy', 'confirmed by follow-up care']"),
])
def test_unknown_values_reject_with_file_value_and_expected(
        tmp_path: Path, column: str, value: str, expected: str) -> None:
    row = {"CaseID": "1", "Image_filename": "case001.png", "Mask_tumor_filename": "case001_tumor.png",
           "Tissue_composition": "homogeneous: fat", "Shape": "oval", "Margin": "circumscribed",
           "Echogenicity": "anechoic", "Posterior_features": "enhancement", "Halo": "no",
           "Calcifications": "no", "Skin_thickening": "no", "BIRADS": "2",
           "Verification": "confirmed by biopsy", "Classification": "benign", column: value}
    with open(tmp_path / "clinical-data.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(row))
        writer.writeheader()
        writer.writerow(row)
    for name in ("case001.png", "case001_tumor.png"):
        (tmp_path / name).write_bytes(b"png")
    items, rejects = read("breast_lesions_usg", tmp_path)
    assert items == []
    why = reasons(rejects)
    assert set(why) == {"case001.png", "case001_tumor.png"}
    reason = why["case001.png"]
    assert f"{column} {value!r} in clinical-data.csv is not one of" in reason and expected in reason
    assert [r.detail for r in rejects if r.path == "case001.png"] == ["CaseID '1'"]
    assert why["case001_tumor.png"] == "mask of a rejected image"


def test_one_row_naming_two_images_is_a_reject(tmp_path: Path) -> None:
    (tmp_path / "clinical-data.csv").write_text(
        "CaseID,Image_filename,Classification\n1,case001.png&case001b.png,benign\n")
    (tmp_path / "case001.png").write_bytes(b"png")
    items, rejects = read("breast_lesions_usg", tmp_path)
    assert items == []
    assert reasons(rejects) == {
        "clinical-data.csv": "several images in one row: Image_filename 'case001.png&case001b.png' in "
                             "clinical-data.csv",
        "case001.png": "image without its clinical-data row"}


def test_margin_and_posterior_rules() -> None:
    assert margin_code("not circumscribed - indistinct&spiculated") == "spiculated"
    assert margin_code("not circumscribed - microlobulated&indistinct") == "microlobulated"
    assert margin_code("Circumscribed") == "circumscribed"
    assert margin_code("lobulated") is None
    assert margin_code("not circumscribed - angular&lobulated") is None
    assert posterior_code("no") == "none" and posterior_code("combined") == "combined"
    assert posterior_code("glowing") is None


def test_broken_inputs_become_rejects(broken_phantom: dict[str, Path], no_pixels: None) -> None:
    root = broken_phantom["breast_lesions_usg"]
    items, rejects = read("breast_lesions_usg", root)
    m = 3 * PER_CLASS + 1
    why = reasons(rejects)
    assert why[f"{IMAGES}/case{m:03d}.png"] == "image named in the clinical data is missing"
    assert why[f"{IMAGES}/case{m + 1:03d}.png"] == "image without its clinical-data row"
    assert why[f"{IMAGES}/case{m + 1:03d}_tumor.png"] == "mask of an image without its clinical-data row"
    assert why[f"{IMAGES}/case{m + 2:03d}_tumor.png"] == "mask without its image"
    assert why[f"{IMAGES}/case{m + 3:03d}.png"].startswith("label outside vocabulary: Classification 'suspicious'")
    assert why[f"{IMAGES}/readme.txt"].startswith("unknown extension")
    assert why[f"{IMAGES}/case{m:03d}_tumor.png"] == "mask without its image"
    assert why[f"{IMAGES}/case{m + 3:03d}_tumor.png"] == "mask of a rejected image"
    assert f"{IMAGES}/case{m + 4:03d}.png" in {i.source_path for i in items}  # truncated: the decoder rejects it
    files = {p.relative_to(root).as_posix() for p in (root / IMAGES).iterdir()}
    assert files == {i.source_path for i in items} | {m for i in items for m in i.extra["masks"]} | set(why) - {
        f"{IMAGES}/case{m:03d}.png"}


def test_missing_columns_name_what_was_found(tmp_path: Path) -> None:
    (tmp_path / "clinical-data.csv").write_text("Case,Image\n1,case001.png\n")
    source = get_source_class("breast_lesions_usg")("breast", tmp_path)
    source.check()
    with pytest.raises(SourceError, match=r"lacks columns \['CaseID', 'Image_filename', 'Classification'\]"):
        list(source.items())


@pytest.mark.parametrize("make", ["missing", "empty", "wrong"])
def test_bad_root_names_layout_and_publisher(tmp_path: Path, make: str) -> None:
    root = tmp_path / "BrEaST"
    if make != "missing":
        root.mkdir()
    if make == "wrong":
        (root / "case001.png").write_bytes(b"png")
    with pytest.raises(SourceError) as err:
        get_source_class("breast_lesions_usg")("breast", root).check()
    message = str(err.value)
    assert "'breast_lesions_usg'" in message and "clinical" in message and "Pawłowska" in message


def test_absent_mask_keeps_the_image_and_says_so(tmp_path: Path) -> None:
    (tmp_path / "clinical-data.csv").write_text(
        "CaseID,Image_filename,Mask_tumor_filename,Mask_other_filename,Classification\n"
        "1,case001.png,case001_tumor.png,case001_other1.png&case001_other2.png,benign\n")
    for name in ("case001.png", "case001_tumor.png", "case001_other2.png"):
        (tmp_path / name).write_bytes(b"png")
    source = get_source_class("breast_lesions_usg")("breast", tmp_path)
    source.check()
    (item,) = list(source.items())
    assert item.extra["masks"] == ["case001_tumor.png", "case001_other2.png"]
    assert item.extra["missing_masks"] == ["case001_other1.png"]
    assert list(source.notices) == ["absent_masks"]
    assert source.notices["absent_masks"].startswith(
        "1 mask(s) named in clinical-data.csv are absent (first: case001_other1.png)")
