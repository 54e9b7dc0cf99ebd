"""DDTI, the Digital Database of Thyroid Images (Pedraza et al., SPIE 2015).

Layout as downloaded (one flat folder)::

    1.xml  1_1.jpg  2.xml  2_1.jpg  2_2.jpg  ...

Each ``N.xml`` is one case: ``<case>`` with ``<number>``, ``<age>``, ``<sex>``,
``<composition>``, ``<echogenicity>``, ``<margins>``, ``<calcifications>``,
``<tirads>``, ``<reportbacaf>``, ``<reporteco>`` and one ``<mark>`` per image
(``<svg>`` holds the nodule outline as JSON). Images are named from the XML
file's stem, as every public loader does: ``<mark><image>k</image>`` in
``N.xml`` is ``N_k.jpg``; the stem is also the patient id. ``<number>`` is
only cross-checked: when it disagrees with the file name (``<number>12`` in
``7.xml``) the XML gets a reject line naming both values, and its images are
still read by the file name (``7_k.jpg``) with the file name's case as
patient, so a typo inside one XML loses no image and cannot merge two cases.
``reporteco`` (the echography report, Spanish or English, often empty)
becomes the item's report.

Label convention: DDTI gives no pathology label, only the Kwak TI-RADS
category, so TI-RADS 2 and 3 map to ``benign`` and 4a, 4b, 4c and 5 to
``malignant``. About 40% of the real cases have an empty ``<tirads>``: they
load with their findings and no label (``None``). A category outside that
list is a reject of the XML and of each of its images. DDTI's spellings map
to ACR TI-RADS codes: ``predominantly solid`` / ``predominantly cystic`` ->
``mixed``, ``dense`` -> ``solid``, ``hypoechogenicity`` -> ``hypoechoic``,
``marked hypoechogenicity`` -> ``very_hypoechoic``, ``well defined`` ->
``smooth``, ``micro-/macrolobulated`` -> ``lobulated``, ``spiculated`` ->
``irregular``, ``microcalcification(s)`` -> ``punctate``; values are compared
lower-cased with surrounding and repeated spaces removed (the real files
write ``isoechogenicity `` with a trailing space). A spelling not listed here
leaves that finding ``None`` and is kept in ``extra["unmapped"]``. ``<sex>``
is ``F``, ``M`` or ``u`` (unknown, kept as ``None``).
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
SEX: dict[str, str | None] = {"f": "F", "m": "M", "u": None}
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
        "Munoz E, Romero E. An open access thyroid ultrasound image database. Proc. SPIE 9287, "
        "10th International Symposium on Medical Information Processing and Analysis (2015); "
        "cimalab, Universidad Nacional de Colombia "
        "(http://cimalab.unal.edu.co/?lang=en&mod=program&id=5)."
    )
    license = "research use; cite Pedraza et al. 2015"
    download = (
        "CIM@LAB, Universidad Nacional de Colombia: the DDTI page "
        "(http://cimalab.unal.edu.co/?lang=en&mod=program&id=5), one archive of N.xml and N_k.jpg"
    )
    folder = "DDTI/ (the N.xml and N_k.jpg files; sub-folders are searched too)"
    required = ("N.xml case files with their N_k.jpg images beside them",)
    quirks = (
        "images are named from the XML file's stem (N.xml -> N_k.jpg); an XML whose <number> "
        "disagrees with its file name gets a reject line, its images are still read by the stem",
        "about 40% of cases have an empty <tirads>: they load with their findings and no label",
        "<sex> is F, M or u (unknown)",
        "descriptor values can carry spaces (trailing 'isoechogenicity ', repeated inside): "
        "they are normalised before mapping",
        "DDTI gives the Kwak TI-RADS category, not pathology: 2-3 -> benign, 4a-5 -> malignant",
    )
    grouping_note = (
        "each case (N.xml) is taken as one patient (patient_id = N); DDTI publishes no separate "
        "patient key, so two cases of one person, if any, cannot be grouped"
    )

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
            case = f.parent / f"{f.stem.rpartition('_')[0]}.xml"
            if media_kind(f) is None:
                yield self.reject(f, f"unknown extension {extension(f) or '(none)'!r}")
            elif "_" in f.stem and case.is_file():
                yield self.reject(f, "image not named by its case XML",
                                  f"no <mark><image>{f.stem.rpartition('_')[2]}</image> in {self.rel(case)}")
            else:
                yield self.reject(f, "image without its case XML",
                                  f"no N.xml beside it names {f.name} (expected N_k.jpg next to N.xml)")

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

        stem = xml.stem
        number = text("number")
        if number and not _same_number(number, stem):
            yield self.reject(
                xml, f"case number disagrees with the file name: <number>{number}</number> in "
                f"{self.rel(xml)}, expected <number>{stem}</number>",
                f"its images are read by the file name ({stem}_k.jpg) with patient {stem}",
            )
        tirads = _norm(text("tirads")).replace(" ", "")
        label = TIRADS_LABEL.get(tirads) if tirads else None
        if tirads and label is None:
            reason = (f"label outside vocabulary: <tirads>{text('tirads')}</tirads> in "
                      f"{self.rel(xml)} is not one of {sorted(TIRADS_LABEL)} (or empty)")
            yield self.reject(xml, reason)
            for f in sorted(xml.parent.glob(f"{stem}_*")):
                claimed.add(f)
                yield self.reject(f, f"its case XML {self.rel(xml)} has an unknown TI-RADS category",
                                  reason)
            return
        findings: dict[str, str | None] = {"tirads_category": tirads or None}
        unmapped: dict[str, str] = {}
        for tag, key, table in _FIELDS:
            raw = _norm(text(tag))
            findings[key] = table.get(raw) if raw else None
            if raw and raw not in table:
                unmapped[tag] = text(tag)
        sex = _norm(text("sex"))
        if sex and sex not in SEX:
            unmapped["sex"] = text("sex")
        report = text("reporteco") or None
        marks = case.findall("mark")
        if not marks:
            yield self.reject(xml, f"case {self.rel(xml)} lists no images (no <mark>)")
            return
        for mark in marks:
            k = (mark.findtext("image") or "").strip()
            image = xml.parent / f"{stem}_{k}.jpg"
            if image in claimed:
                yield self.reject(xml, f"{self.rel(xml)} names image {k} twice",
                                  f"<mark><image>{k}</image> repeated; {image.name} is listed once")
                continue
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
                patient_id=stem,
                findings=dict(findings),
                report=report,
                extra={
                    "case_xml": self.rel(xml),
                    "age": text("age") or None,
                    "sex": SEX.get(sex),
                    "regions": regions,
                    "unmapped": dict(unmapped),
                    "reportbacaf": text("reportbacaf") or None,
                },
            )


def _same_number(number: str, stem: str) -> bool:
    """``<number>`` agrees with the file stem (``007`` and ``7`` agree)."""
    if number.isdigit() and stem.isdigit():
        return int(number) == int(stem)
    return number == stem
