"""DDTI: one XML per case, images named from the XML's stem, descriptors mapped to ACR TI-RADS codes."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import pytest

from echocaptions.sources import SourceError, get_source_class
from echocaptions.sources.ddti import CALCIFICATIONS, COMPOSITION, ECHOGENICITY, MARGINS
from tests.sources.conftest import PER_CLASS, SIZE, read, reasons

CASE = """<?xml version="1.0" encoding="UTF-8"?>
<case>
<number>{number}</number>
<age>49</age>
<sex>{sex}</sex>
<composition>{composition}</composition>
<echogenicity>{echogenicity}</echogenicity>
<margins>{margins}</margins>
<calcifications>{calcifications}</calcifications>
<tirads>{tirads}</tirads>
<reportbacaf></reportbacaf>
<reporteco>{report}</reporteco>
{marks}</case>
"""
MARK = """<mark>
<image>{k}</image>
<svg>[{{"points":[{{"x":1,"y":2}},{{"x":3,"y":4}}],"annotation":{{}},"regionType":"freehand"}}]</svg>
</mark>
"""
KWAK_LABEL = {"2": "benign", "3": "benign", "4a": "malignant", "4b": "malignant", "4c": "malignant",
              "5": "malignant"}


def write_case(folder: Path, stem: int, images: int = 1, number: int | str | None = None,
               **fields: str) -> None:
    """``{stem}.xml`` (its ``<number>`` is ``number`` when given) and ``{stem}_k.jpg`` images."""
    values = {"sex": "F", "composition": "", "echogenicity": "", "margins": "", "calcifications": "",
              "tirads": "", "report": ""} | fields
    marks = "".join(MARK.format(k=k) for k in range(1, images + 1))
    (folder / f"{stem}.xml").write_text(
        CASE.format(number=stem if number is None else number, marks=marks, **values))
    for k in range(1, images + 1):
        (folder / f"{stem}_{k}.jpg").write_bytes(b"jpg")


def spaced(text: str | None) -> str:
    return " ".join((text or "").split()).lower()


def expected_case(xml: Path) -> tuple[str | None, dict[str, str | None], str | None]:
    """Label, findings and sex of a case, computed from its XML as written."""
    case = ET.parse(xml).getroot()
    tirads = spaced(case.findtext("tirads"))
    findings = {
        "tirads_category": tirads or None,
        "tirads_composition": COMPOSITION.get(spaced(case.findtext("composition"))),
        "tirads_echogenicity": ECHOGENICITY.get(spaced(case.findtext("echogenicity"))),
        "tirads_margin": MARGINS.get(spaced(case.findtext("margins"))),
        "tirads_foci": CALCIFICATIONS.get(spaced(case.findtext("calcifications"))),
    }
    sex = {"F": "F", "M": "M", "u": None}[(case.findtext("sex") or "").strip()]
    return KWAK_LABEL.get(tirads), findings, sex


@pytest.fixture(scope="module")
def ddti16(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Sixteen phantom cases: enough for the real files' irregularities (empty <tirads>, sex u...)."""
    from echocaptions.synth import make_phantom

    return make_phantom(tmp_path_factory.mktemp("ddti16"), per_class=8, seed=4, size=SIZE,
                        layouts=["ddti"])["ddti"]


def test_phantom_items(phantom: dict[str, Path], no_pixels: None) -> None:
    items, rejects = read("ddti", phantom["ddti"])
    assert rejects == []
    cases = {i.patient_id for i in items}
    assert cases == {str(n) for n in range(1, 2 * PER_CLASS + 1)}
    assert len(items) == 2 * PER_CLASS + sum(1 for n in range(1, 2 * PER_CLASS + 1) if n % 3 == 0)
    assert Counter(i.label for i in items if i.source_path.endswith("_1.jpg")) == {
        "benign": PER_CLASS, "malignant": PER_CLASS}
    for item in items:
        xml = Path(item.path).parent / item.extra["case_xml"]
        case = ET.parse(xml).getroot()
        assert (item.label, item.findings, item.extra["sex"]) == expected_case(xml)
        assert item.report == (case.findtext("reporteco") or None)
        assert all(v is not None for v in item.findings.values())
        assert item.source_path.startswith(f"{item.patient_id}_") and xml.stem == item.patient_id
    assert any(i.report for i in items)


def test_phantom_irregular_cases_load(ddti16: Path, no_pixels: None) -> None:
    items, rejects = read("ddti", ddti16)
    assert rejects == []
    xmls = sorted(ddti16.glob("*.xml"), key=lambda p: int(p.stem))
    texts = {x.stem: x.read_text() for x in xmls}
    # the tree really carries the quirks of the real files
    assert sum("<tirads></tirads>" in t for t in texts.values()) >= 3
    assert any("<sex>u</sex>" in t for t in texts.values())
    assert any("ogenicity </echogenicity>" in t for t in texts.values())
    assert any("  defined</margins>" in t for t in texts.values())
    images = sorted(ddti16.glob("*.jpg"))
    assert len(items) == len(images) and {i.source_path for i in items} == {p.name for p in images}
    for item in items:
        label, findings, sex = expected_case(ddti16 / item.extra["case_xml"])
        assert (item.label, item.findings, item.extra["sex"]) == (label, findings, sex)
        assert all(v is not None for k, v in item.findings.items() if k != "tirads_category")
        assert item.extra["unmapped"] == {}
    unlabelled = {i.patient_id for i in items if i.label is None}
    assert unlabelled == {x for x, t in texts.items() if "<tirads></tirads>" in t}
    assert {i.findings["tirads_category"] for i in items if i.label is None} == {None}


def test_spellings_map_to_tirads_codes(tmp_path: Path) -> None:
    write_case(tmp_path, 1, composition="predominantly solid", echogenicity="marked hypoechogenicity",
               margins="well defined smooth", calcifications="microcalcification", tirads="4b",
               report="Nodulo solido hipoecoico. TI-RADS 4b.")
    write_case(tmp_path, 2, composition="dense", echogenicity="isoechogenicity", margins="spiculated",
               calcifications="non", tirads="3")
    write_case(tmp_path, 3, composition="gelatinous", tirads="")
    write_case(tmp_path, 4, composition=" Solid", echogenicity="hypoechogenicity ",
               margins="well  defined", calcifications="macrocalcification  ", tirads=" 4A ", sex="u")
    items, rejects = read("ddti", tmp_path)
    assert rejects == []
    one, two, three, four = items
    assert one.findings == {"tirads_category": "4b", "tirads_composition": "mixed",
                            "tirads_echogenicity": "very_hypoechoic", "tirads_margin": "smooth",
                            "tirads_foci": "punctate"}
    assert (one.label, one.patient_id, one.report) == ("malignant", "1", "Nodulo solido hipoecoico. TI-RADS 4b.")
    assert two.findings["tirads_composition"] == "solid" and two.findings["tirads_margin"] == "irregular"
    assert two.label == "benign" and two.report is None and two.extra["sex"] == "F"
    assert three.label is None and three.findings["tirads_composition"] is None
    assert three.extra["unmapped"] == {"composition": "gelatinous"}
    assert four.findings == {"tirads_category": "4a", "tirads_composition": "solid",
                             "tirads_echogenicity": "hypoechoic", "tirads_margin": "smooth",
                             "tirads_foci": "macrocalcifications"}
    assert (four.label, four.extra["sex"], four.extra["unmapped"]) == ("malignant", None, {})


def test_empty_tirads_loads_with_findings_and_no_label(tmp_path: Path) -> None:
    write_case(tmp_path, 5, images=2, composition="solid", echogenicity="hypoechogenicity",
               margins="ill defined", calcifications="non", tirads="")
    items, rejects = read("ddti", tmp_path)
    assert rejects == [] and [i.source_path for i in items] == ["5_1.jpg", "5_2.jpg"]
    for item in items:
        assert item.label is None and item.patient_id == "5"
        assert item.findings == {"tirads_category": None, "tirads_composition": "solid",
                                 "tirads_echogenicity": "hypoechoic", "tirads_margin": "ill_defined",
                                 "tirads_foci": "none"}


def test_number_disagreeing_with_file_name(tmp_path: Path) -> None:
    write_case(tmp_path, 7, images=2, number=12, composition="solid", tirads="4a")
    write_case(tmp_path, 12, composition="spongiform", tirads="2")
    items, rejects = read("ddti", tmp_path)
    assert [(i.source_path, i.patient_id, i.label) for i in items] == [
        ("7_1.jpg", "7", "malignant"), ("7_2.jpg", "7", "malignant"), ("12_1.jpg", "12", "benign")]
    assert [(r.path, r.reason) for r in rejects] == [
        ("7.xml", "case number disagrees with the file name: <number>12</number> in 7.xml, "
                  "expected <number>7</number>")]
    assert "7_k.jpg" in (rejects[0].detail or "")
    write_case(tmp_path, 8, number="008")  # the same number, zero-padded, agrees
    assert not [r for r in read("ddti", tmp_path)[1] if r.path == "8.xml"]


def test_unknown_category_rejects_the_case_and_each_image(tmp_path: Path) -> None:
    write_case(tmp_path, 3, images=2, tirads="6")
    (tmp_path / "4_1.jpg").write_bytes(b"jpg")
    write_case(tmp_path, 5, tirads="2")
    (tmp_path / "5_9.jpg").write_bytes(b"jpg")
    items, rejects = read("ddti", tmp_path)
    why = reasons(rejects)
    assert why["3.xml"].startswith("label outside vocabulary: <tirads>6</tirads> in 3.xml is not one of")
    assert why["3_1.jpg"] == why["3_2.jpg"] == "its case XML 3.xml has an unknown TI-RADS category"
    assert why["4_1.jpg"] == "image without its case XML"
    assert why["5_9.jpg"] == "image not named by its case XML"
    assert [i.source_path for i in items] == ["5_1.jpg"]
    files = {p.name for p in tmp_path.iterdir() if p.suffix == ".jpg"}
    assert files == {i.source_path for i in items} | {r.path for r in rejects if r.path.endswith(".jpg")}


def test_broken_inputs_become_rejects(broken_phantom: dict[str, Path], no_pixels: None) -> None:
    root = broken_phantom["ddti"]
    items, rejects = read("ddti", root)
    m = 2 * PER_CLASS + 1
    why = reasons(rejects)
    assert why[f"{m}.xml"] == f"XML does not parse: {m}.xml"
    assert "does not parse" in why[f"{m}_1.jpg"]
    assert "label outside vocabulary" in why[f"{m + 2}.xml"] and "<tirads>7</tirads>" in why[f"{m + 2}.xml"]
    assert why[f"{m + 2}_1.jpg"] == f"its case XML {m + 2}.xml has an unknown TI-RADS category"
    assert why[f"{m + 3}_1.jpg"] == "image without its case XML"
    assert why[f"{m + 4}_2.jpg"] == "image named in the case XML is missing"
    assert why[f"{m + 5}.xml"] == (f"case number disagrees with the file name: <number>{m + 50}</number> "
                                   f"in {m + 5}.xml, expected <number>{m + 5}</number>")
    assert f"{m + 1}_1.jpg" in {i.source_path for i in items}  # truncated: the decoder rejects it
    assert [i.patient_id for i in items if i.source_path == f"{m + 5}_1.jpg"] == [str(m + 5)]
    images = {p.name for p in root.glob("*.jpg")}
    assert images == {i.source_path for i in items} | {p for p in why if p.endswith(".jpg")} - {f"{m + 4}_2.jpg"}


def test_class_attributes_say_where_and_what() -> None:
    cls = get_source_class("ddti")
    assert "Universidad Nacional de Colombia" in cls.download and "cimalab.unal.edu.co" in cls.download
    assert cls.folder.startswith("DDTI") and cls.required
    assert any("<tirads>" in q for q in cls.quirks) and any(" u " in q or "u (unknown)" in q for q in cls.quirks)
    assert cls.grouping_note and "patient" in cls.grouping_note


def test_bad_root_names_layout_and_publisher(tmp_path: Path) -> None:
    (tmp_path / "DDTI").mkdir()
    (tmp_path / "DDTI" / "1_1.jpg").write_bytes(b"jpg")
    for root in (tmp_path / "missing", tmp_path / "DDTI"):
        with pytest.raises(SourceError) as err:
            get_source_class("ddti")("ddti", root).check()
        message = str(err.value)
        assert "'ddti'" in message and "DDTI" in message and "Pedraza" in message and "N.xml" in message
