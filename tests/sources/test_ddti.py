"""DDTI: one XML per case, descriptors mapped to ACR TI-RADS codes, case number = patient."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import pytest

from echocaptions.sources import SourceError, get_source_class
from tests.sources.conftest import PER_CLASS, read, reasons

CASE = """<?xml version="1.0" encoding="UTF-8"?>
<case>
<number>{number}</number>
<age>49</age>
<sex>F</sex>
<composition>{composition}</composition>
<echogenicity>{echogenicity}</echogenicity>
<margins>{margins}</margins>
<calcifications>{calcifications}</calcifications>
<tirads>{tirads}</tirads>
<reportbacaf></reportbacaf>
<reporteco>{report}</reporteco>
<mark>
<image>1</image>
<svg>[{{"points":[{{"x":1,"y":2}},{{"x":3,"y":4}}],"annotation":{{}},"regionType":"freehand"}}]</svg>
</mark>
</case>
"""


def write_case(folder: Path, number: int, **fields: str) -> None:
    values = {"composition": "", "echogenicity": "", "margins": "", "calcifications": "",
              "tirads": "", "report": ""} | fields
    (folder / f"{number}.xml").write_text(CASE.format(number=number, **values))
    (folder / f"{number}_1.jpg").write_bytes(b"jpg")


def test_phantom_items(phantom: dict[str, Path], no_pixels: None) -> None:
    items, rejects = read("ddti", phantom["ddti"])
    assert rejects == []
    cases = {i.patient_id for i in items}
    assert cases == {str(n) for n in range(1, 2 * PER_CLASS + 1)}
    assert len(items) == 2 * PER_CLASS + sum(1 for n in range(1, 2 * PER_CLASS + 1) if n % 3 == 0)
    assert Counter(i.label for i in items if i.source_path.endswith("_1.jpg")) == {
        "benign": PER_CLASS, "malignant": PER_CLASS}
    for item in items:
        case = ET.parse(Path(item.path).parent / item.extra["case_xml"]).getroot()
        assert item.findings["tirads_category"] == case.findtext("tirads")
        assert item.label == ("benign" if case.findtext("tirads") in ("2", "3") else "malignant")
        assert item.report == (case.findtext("reporteco") or None)
        assert all(v is not None for v in item.findings.values())
        assert item.source_path.startswith(f"{item.patient_id}_")
    assert any(i.report for i in items)


def test_spellings_map_to_tirads_codes(tmp_path: Path) -> None:
    write_case(tmp_path, 1, composition="predominantly solid", echogenicity="marked hypoechogenicity",
               margins="well defined smooth", calcifications="microcalcification", tirads="4b",
               report="Nodulo solido hipoecoico. TI-RADS 4b.")
    write_case(tmp_path, 2, composition="dense", echogenicity="isoechogenicity", margins="spiculated",
               calcifications="non", tirads="3")
    write_case(tmp_path, 3, composition="gelatinous", tirads="")
    items, rejects = read("ddti", tmp_path)
    assert rejects == []
    one, two, three = items
    assert one.findings == {"tirads_category": "4b", "tirads_composition": "mixed",
                            "tirads_echogenicity": "very_hypoechoic", "tirads_margin": "smooth",
                            "tirads_foci": "punctate"}
    assert (one.label, one.patient_id, one.report) == ("malignant", "1", "Nodulo solido hipoecoico. TI-RADS 4b.")
    assert two.findings["tirads_composition"] == "solid" and two.findings["tirads_margin"] == "irregular"
    assert two.label == "benign" and two.report is None
    assert three.label is None and three.findings["tirads_composition"] is None
    assert three.extra["unmapped"] == {"composition": "gelatinous"}


def test_broken_inputs_become_rejects(broken_phantom: dict[str, Path], no_pixels: None) -> None:
    items, rejects = read("ddti", broken_phantom["ddti"])
    m = 2 * PER_CLASS + 1
    why = reasons(rejects)
    assert why[f"{m}.xml"] == f"XML does not parse: {m}.xml"
    assert "does not parse" in why[f"{m}_1.jpg"]
    assert "label outside vocabulary" in why[f"{m + 2}.xml"] and "<tirads>7</tirads>" in why[f"{m + 2}.xml"]
    assert why[f"{m + 3}_1.jpg"] == "image without its case XML"
    assert why[f"{m + 4}_2.jpg"] == "image named in the case XML is missing"
    assert f"{m + 1}_1.jpg" in {i.source_path for i in items}  # truncated: the decoder rejects it


def test_bad_root_names_layout_and_publisher(tmp_path: Path) -> None:
    (tmp_path / "DDTI").mkdir()
    (tmp_path / "DDTI" / "1_1.jpg").write_bytes(b"jpg")
    for root in (tmp_path / "missing", tmp_path / "DDTI"):
        with pytest.raises(SourceError) as err:
            get_source_class("ddti")("ddti", root).check()
        message = str(err.value)
        assert "'ddti'" in message and "DDTI" in message and "Pedraza" in message and "N.xml" in message
