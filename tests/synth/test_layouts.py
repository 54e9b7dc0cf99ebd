"""The phantom writes each public layout exactly, deterministically, with per_class respected."""

from __future__ import annotations

import csv
import hashlib
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from echocaptions.synth import make_phantom, make_report, sample_findings
from echocaptions.synth.layouts import LAYOUT_FOLDERS, MARKER, POCUS_COLUMNS

SIZE = (64, 96)
PER_CLASS = 2


@pytest.fixture(scope="module")
def roots(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_phantom(tmp_path_factory.mktemp("layouts"), per_class=PER_CLASS, seed=5, size=SIZE)


def digests(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_returns_one_root_per_layout(roots: dict[str, Path]) -> None:
    out = roots["busi"].parent
    assert roots == {
        "busi": out / "BUSI",
        "ddti": out / "DDTI",
        "aul": out / "AUL",
        "pocus": out / "covid19_ultrasound" / "data",
        "report_corpus": out / "ultrasound_reports",
    }
    assert set(LAYOUT_FOLDERS) == set(roots)


def test_busi_layout(roots: dict[str, Path]) -> None:
    base = roots["busi"] / "Dataset_BUSI_with_GT"
    assert sorted(p.name for p in base.iterdir()) == ["benign", "malignant", "normal"]
    for label in ("benign", "malignant", "normal"):
        names = sorted(p.name for p in (base / label).iterdir())
        images = [n for n in names if "_mask" not in n]
        assert images == [f"{label} ({n}).png" for n in range(1, PER_CLASS + 1)]
        for image in images:
            assert image.replace(".png", "_mask.png") in names
            with Image.open(base / label / image) as im:
                assert (im.mode, im.size) == ("RGB", (SIZE[1], SIZE[0]))
            with Image.open(base / label / image.replace(".png", "_mask.png")) as mask:
                assert mask.mode == "L" and set(np.unique(np.asarray(mask))) <= {0, 255}
        assert all(re.fullmatch(rf"{label} \(\d+\)(_mask(_1)?)?\.png", n) for n in names)


def test_ddti_layout(roots: dict[str, Path]) -> None:
    root = roots["ddti"]
    xmls = sorted(root.glob("*.xml"), key=lambda p: int(p.stem))
    assert [p.stem for p in xmls] == [str(n) for n in range(1, 2 * PER_CLASS + 1)]
    for xml in xmls:
        case = ET.parse(xml).getroot()
        assert case.tag == "case" and case.findtext("number") == xml.stem
        for tag in ("age", "sex", "composition", "echogenicity", "margins", "calcifications",
                    "tirads", "reportbacaf", "reporteco"):
            assert case.find(tag) is not None, tag
        assert case.findtext("tirads") in {"2", "3", "4a", "4b", "4c", "5"}
        for mark in case.findall("mark"):
            assert (root / f"{xml.stem}_{mark.findtext('image')}.jpg").is_file()
            (region,) = json.loads(mark.findtext("svg"))
            assert region["regionType"] == "freehand" and {"x", "y"} == set(region["points"][0])
    assert {p.suffix for p in root.iterdir()} == {".xml", ".jpg"}


def test_aul_layout(roots: dict[str, Path]) -> None:
    root = roots["aul"]
    assert sorted(p.name for p in root.iterdir()) == ["Benign", "Malignant", "Normal"]
    for cls in ("Normal", "Benign", "Malignant"):
        assert sorted(p.name for p in (root / cls / "image").iterdir()) == [f"{n}.jpg" for n in range(1, PER_CLASS + 1)]
        kinds = sorted(p.name for p in (root / cls / "segmentation").iterdir())
        assert kinds == (["liver", "outline"] if cls == "Normal" else ["liver", "mass", "outline"])
        points = json.loads((root / cls / "segmentation" / "liver" / "1.json").read_text())
        assert all(len(p) == 2 and all(isinstance(v, int) for v in p) for p in points)


def test_pocus_layout(roots: dict[str, Path]) -> None:
    import av

    data = roots["pocus"]
    with open(data / "dataset_metadata.csv", newline="") as fh:
        reader = csv.DictReader(fh)
        assert tuple(reader.fieldnames or ()) == POCUS_COLUMNS
        rows = {r["Filename"]: r for r in reader}
    files = sorted((data / "pocus_videos").rglob("*.*"))
    assert {f.parent.name for f in files} <= {"convex", "linear"}
    assert {f.suffix for f in files} == {".mp4", ".gif"}
    for prefix in ("Cov", "Pneu", "Reg", "Vir"):
        assert sum(f.name.startswith(prefix + "-") for f in files) == PER_CLASS
    for f in files:
        row = rows[f.stem]
        assert row["Probe"] == f.parent.name
        assert row["Label"] in {"COVID-19", "Bacterial pneumonia", "regular", "Viral pneumonia"}
    mp4 = next(f for f in files if f.suffix == ".mp4")
    with av.open(str(mp4)) as container:
        assert sum(1 for _ in container.decode(video=0)) >= 2
    gif = next(f for f in files if f.suffix == ".gif")
    with Image.open(gif) as im:
        assert im.n_frames >= 2


def test_report_corpus_layout(roots: dict[str, Path]) -> None:
    root = roots["report_corpus"]
    annotation = json.loads((root / "annotation.json").read_text())
    assert set(annotation) == {"train", "val", "test"}
    records = [r for split in annotation.values() for r in split]
    assert len(records) == 3 * 3 * PER_CLASS
    for record in records:
        assert set(record) == {"uid", "image_path", "finding", "labels"}
        for rel in record["image_path"]:
            organ, uid, name = rel.split("/")
            assert organ in {"breast", "thyroid", "liver"} and uid == str(record["uid"])
            assert (root / rel).is_file() and re.fullmatch(r"\d+\.png", name)
        for section in ("CLINICAL HISTORY:", "TECHNIQUE:", "FINDINGS:", "IMPRESSION:"):
            assert section in record["finding"]


def test_two_runs_are_byte_identical(tmp_path: Path) -> None:
    first = make_phantom(tmp_path / "a", per_class=1, seed=9, size=SIZE, broken=True)
    second = make_phantom(tmp_path / "b", per_class=1, seed=9, size=SIZE, broken=True)
    assert digests(tmp_path / "a") == digests(tmp_path / "b")
    assert set(first) == set(second)
    other = make_phantom(tmp_path / "c", per_class=1, seed=10, size=SIZE, broken=True)
    assert digests(tmp_path / "c") != digests(tmp_path / "a") and set(other) == set(first)


def test_rerun_overwrites_and_organs_filter(tmp_path: Path) -> None:
    make_phantom(tmp_path, per_class=2, seed=0, size=SIZE)
    roots = make_phantom(tmp_path, organs=["thyroid"], per_class=1, seed=0, size=SIZE)
    assert set(roots) == {"ddti", "report_corpus"}
    assert sorted(p.name for p in roots["ddti"].glob("*.xml")) == ["1.xml", "2.xml"]
    organs = {p.name for p in roots["report_corpus"].iterdir() if p.is_dir()}
    assert organs == {"thyroid"}
    assert json.loads((tmp_path / MARKER).read_text())["organs"] == ["thyroid"]


def test_refuses_to_overwrite_foreign_folders(tmp_path: Path) -> None:
    (tmp_path / "BUSI").mkdir()
    (tmp_path / "BUSI" / "mine.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="make_phantom"):
        make_phantom(tmp_path, organs=["breast"], per_class=1, size=SIZE)
    assert (tmp_path / "BUSI" / "mine.txt").read_text() == "keep me"
    with pytest.raises(ValueError, match="kidney"):
        make_phantom(tmp_path / "x", organs=["kidney"])


@pytest.mark.parametrize("organ,label", [("breast", "malignant"), ("thyroid", "benign"),
                                         ("liver", "malignant"), ("lung", "covid")])
def test_reports_follow_findings_and_carry_phi(organ: str, label: str) -> None:
    texts = []
    for seed in range(12):
        rng = np.random.default_rng(seed)
        findings = sample_findings(organ, label, rng)
        report = make_report(organ, label, findings, rng)
        assert all(p in report.text for p in report.phi)
        assert all(e in report.text for e in report.eponyms)
        texts.append(report.text)
        if organ == "breast":
            assert f"BI-RADS {findings['birads_category'].upper()}" in report.text
        if organ == "thyroid":
            assert f"TI-RADS {findings['tirads_category']}" in report.text
    joined = "\n".join(texts)
    assert re.search(r"\b(Mrs?|Ms)\. [A-Z][a-z]+ [A-Z][a-z]+", joined) or re.search(r"[A-Z]+, [A-Z]+", joined)
    assert "Dr. " in joined and "MRN:" in joined and "Accession:" in joined
    assert re.search(r"\d{3}[- ]\d{3}[- ]\d{4}|\(\d{3}\) \d{3}-\d{4}", joined)
    if organ != "lung":
        assert "Doppler" in joined
    if organ == "thyroid":
        assert "Hashimoto" in joined or "Graves" in joined
    assert len(set(texts)) == len(texts)
