"""DDTI, the Digital Database of Thyroid Images (Pedraza et al., SPIE 2015).

Layout as downloaded (one flat folder)::

    1.xml  1_1.jpg  2.xml  2_1.jpg  2_2.jpg  ...

Each ``N.xml`` is one case: ``<case>`` with ``<number>``, ``<age>``, ``<sex>``,
``<composition>``, ``<echogenicity>``, ``<margins>``, ``<calcifications>``,
``<tirads>``, ``<reportbacaf>``, ``<reporteco>`` and one ``<mark>`` per image
(``<image>k</image>`` names ``N_k.jpg``; ``<svg>`` holds the nodule outline as
JSON). The case number is the patient id. ``reporteco`` (the echography
report, Spanish or English, often empty) becomes the item's report.

Label convention: DDTI gives no pathology label, only the Kwak TI-RADS
category, so TI-RADS 2 and 3 map to ``benign`` and 4a, 4b, 4c and 5 to
``malignant``; an empty category leaves the label ``None``. DDTI's spellings
map to ACR TI-RADS codes: ``predominantly solid`` / ``predominantly cystic`` ->
``mixed``, ``dense`` -> ``solid``, ``hypoechogenicity`` -> ``hypoechoic``,
``marked hypoechogenicity`` -> ``very_hypoechoic``, ``well defined`` ->
``smooth``, ``micro-/macrolobulated`` -> ``lobulated``, ``spiculated`` ->
``irregular``, ``microcalcification(s)`` -> ``punctate``; a spelling not
listed here leaves that finding ``None`` and is kept in ``extra["unmapped"]``.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

from echocaptions.schema import Reject, SourceItem
from echocaptions.sources.base import Source, SourceError, register
from echocaptions.sources.imagefolder import extension, media_kind, sorted_files

COMPOSITION: dict[str, str] = {
    "solid": "solid",
    "dense": "solid",
    "predominantly solid": "mixed",
    "predominantly cystic": "mixed",
    "mixed": "mixed",
    "cystic": "cystic",
    "spongiform": "spongiform",
}
ECHOGENICITY: dict[str, str] = {
    "hyperechogenicity": "hyperechoic",
    "isoechogenicity": "isoechoic",
    "hypoechogenicity": "hypoechoic",
    "marked hypoechogenicity": "very_hypoechoic",
    "anechoic": "anechoic",
}
MARGINS: dict[str, str] = {
    "well defined": "smooth",
    "well defined smooth": "smooth",
    "smooth": "smooth",
    "ill defined": "ill_defined",
    "microlobulated": "lobulated",
    "macrolobulated": "lobulated",
    "spiculated": "irregular",
}
CALCIFICATIONS: dict[str, str] = {
    "non": "none",
    "none": "none",
    "microcalcifications": "punctate",
    "microcalcification": "punctate",
    "macrocalcifications": "macrocalcifications",
    "macrocalcification": "macrocalcifications",
    "peripheral": "peripheral",
}
TIRADS_LABEL: dict[str, str] = {
    "1": "benign", "2": "benign", "3": "benign",
    "4": "malignant", "4a": "malignant", "4b": "malignant", "4c": "malignant", "5": "malignant",
}
_FIELDS: tuple[tuple[str, str, dict[str, str]], ...] = (
    ("composition", "tirads_composition", COMPOSITION),
    ("echogenicity", "tirads_echogenicity", ECHOGENICITY),
    ("margins", "tirads_margin", MARGINS),
    ("calcifications", "tirads_foci", CALCIFICATIONS),
)


def _norm(text: str | None) -> str:
    return re.sub(r"[\s_-]+", " ", (text or "").strip().lower())


@register
class DdtiSource(Source):
    """DDTI thyroid cases: one XML per patient, images ``N_k.jpg`` beside it."""

    layout = "ddti"
    organs = ("thyroid",)
    expected = (
        "one folder of case files N.xml (<case> with <number>, <composition>, <echogenicity>, "
        "<margins>, <calcifications>, <tirads>, <reporteco>, <mark><image>k</image>...) and "
        "their images N_k.jpg beside them."
    )
    published = (
        "DDTI (Digital Database of Thyroid Images): Pedraza L, Vargas C, Narvaez F, Duran O, "
        "Munoz E, Romero E. An open access thyroid ultrasound image database. Proc. SPIE 9287, 10th International Symposium on Medical "
        "Information Processing and Analysis (2015); cimalab, Universidad Nacional de Colombia "
        "(http://cimalab.unal.edu.co/?lang=en&mod=program&id=5)."
    )
    license = "research use; cite Pedraza et al. 2015"

    def check(self) -> None:
        super().check()
        if not any(self.root.rglob("*.xml")):
            raise SourceError(f"{self.missing_message()} (no N.xml case files in {self.root})")

    def iter_items(self) -> Iterator[SourceItem | Reject]:
        self.check()
        files = sorted_files(self.root)
        claimed: set[Path] = set()
        for xml in (f for f in files if extension(f) == ".xml"):
            yield from self._case(xml, claimed)
        for f in files:
            if extension(f) == ".xml" or f in claimed:
                continue
            if media_kind(f) is None:
                yield self.reject(f, f"unknown extension {extension(f) or '(none)'!r}")
            else:
                yield self.reject(f, "image without its case XML",
                                  f"no <mark> in any N.xml names {f.name}")

    def _case(self, xml: Path, claimed: set[Path]) -> Iterator[SourceItem | Reject]:
        try:
            case = ET.parse(xml).getroot()
        except ET.ParseError as exc:
            yield self.reject(xml, f"XML does not parse: {self.rel(xml)}", str(exc))
            for f in xml.parent.glob(f"{xml.stem}_*"):
                claimed.add(f)
                yield self.reject(f, f"its case XML {self.rel(xml)} does not parse")
            return

        def text(tag: str) -> str:
            node = case.find(tag)
            return (node.text or "").strip() if node is not None else ""

        number = text("number") or xml.stem
        tirads = _norm(text("tirads")).replace(" ", "")
        label = TIRADS_LABEL.get(tirads) if tirads else None
        if tirads and label is None:
            for f in xml.parent.glob(f"{xml.stem}_*"):
                claimed.add(f)
            yield self.reject(
                xml,
                f"label outside vocabulary: <tirads>{text('tirads')}</tirads> in {self.rel(xml)} "
                f"is not one of {sorted(TIRADS_LABEL)}",
            )
            return
        findings: dict[str, str | None] = {"tirads_category": tirads or None}
        unmapped: dict[str, str] = {}
        for tag, key, table in _FIELDS:
            raw = _norm(text(tag))
            findings[key] = table.get(raw) if raw else None
            if raw and raw not in table:
                unmapped[tag] = text(tag)
        report = text("reporteco") or None
        marks = case.findall("mark")
        if not marks:
            yield self.reject(xml, f"case {self.rel(xml)} lists no images (no <mark>)")
            return
        for mark in marks:
            k = (mark.findtext("image") or "").strip()
            image = xml.parent / f"{number}_{k}.jpg"
            if not image.is_file():
                yield self.reject(
                    image, "image named in the case XML is missing",
                    f"{self.rel(xml)} <mark><image>{k}</image> expects {image.name}",
                )
                continue
            claimed.add(image)
            svg = mark.findtext("svg") or ""
            try:
                regions = len(json.loads(svg)) if svg.strip() else 0
            except (ValueError, TypeError):
                regions = 0
            yield SourceItem(
                source=self.name,
                dataset="ddti",
                organ="thyroid",
                path=str(image.resolve()),
                source_path=self.rel(image),
                label=label,
                patient_id=number,
                findings=dict(findings),
                report=report,
                extra={
                    "case_xml": self.rel(xml),
                    "age": text("age") or None,
                    "sex": text("sex") or None,
                    "regions": regions,
                    "unmapped": unmapped,
                    "reportbacaf": text("reportbacaf") or None,
                },
            )

