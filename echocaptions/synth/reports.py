"""Synthetic ultrasound reports and findings for the phantom.

Reports read like real radiology reports: a letterhead with protected health
information (names with and without titles, dates in several formats, MRN and
accession numbers, phone numbers, hospital names, now and then an age over 89),
then CLINICAL HISTORY, TECHNIQUE, FINDINGS and IMPRESSION sections whose
content follows the image's label and findings (BI-RADS / TI-RADS descriptors,
liver echogenicity, lung artefacts). Clinical eponyms (Hashimoto, Graves,
Doppler, Morison) appear in the text and must survive de-identification.

:class:`SyntheticReport` also lists the PHI strings it inserted and the
eponyms it used, so de-identification can be tested against ground truth.
Everything is drawn from the ``rng`` passed in, so output is deterministic.

:func:`make_report_zh` writes Chinese reports as the public Chinese report
corpora hold them (plain or word-segmented with spaces), with Chinese names,
dates in the common Chinese formats, a hospital, ids and a phone number, and
records where each planted value stands.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np

T = TypeVar("T")

FIRST_NAMES_F = ("Jane", "Maria", "Olivia", "Grace", "Aisha", "Elena", "Margaret", "Linda", "Sofia")
FIRST_NAMES_M = ("John", "Robert", "David", "Ahmed", "Carlos", "Wei", "Thomas", "Samuel")
LAST_NAMES = (
    "Doe", "Smith", "Johnson", "Garcia", "Chen", "Okafor", "Novak", "Brown", "Patel",
    "Lopez", "Kowalski", "Anderson", "Nguyen", "Murphy",
)
HOSPITALS = (
    "St. Mary's General Hospital",
    "Riverside University Medical Center",
    "Lakeview Regional Hospital",
    "Northgate Women's Imaging Center",
    "Mercy Valley Medical Center",
    "Hospital Universitario San Rafael",
)
MONTHS = (
    "January", "February", "March", "April", "May", "June", "July", "August",
    "September", "October", "November", "December",
)
EPONYMS = ("Hashimoto", "Graves", "Doppler", "Morison", "Couinaud")

# Findings the phantom draws per organ and label, as schema codes. Each entry
# lists the plausible values; one is drawn per image.
_FINDINGS: dict[str, dict[str, dict[str, Sequence[str | None]]]] = {
    "breast": {
        "normal": {"birads_category": ("1",), "birads_tissue": (
            "homogeneous_fat", "homogeneous_fibroglandular", "heterogeneous")},
        "benign": {
            "birads_category": ("2", "3", "3", "4a"),
            "birads_shape": ("oval", "oval", "round"),
            "birads_orientation": ("parallel",),
            "birads_margin": ("circumscribed",),
            "birads_echo_pattern": ("hypoechoic", "anechoic", "isoechoic"),
            "birads_posterior": ("enhancement", "none"),
            "birads_calcifications": ("none",),
        },
        "malignant": {
            "birads_category": ("4b", "4c", "5", "5"),
            "birads_shape": ("irregular", "irregular", "round"),
            "birads_orientation": ("not_parallel", "not_parallel", "parallel"),
            "birads_margin": ("spiculated", "angular", "indistinct", "microlobulated"),
            "birads_echo_pattern": ("hypoechoic", "heterogeneous"),
            "birads_posterior": ("shadowing", "shadowing", "combined"),
            "birads_calcifications": ("none", "in_mass"),
        },
    },
    "thyroid": {
        "normal": {},
        "benign": {
            "tirads_category": ("2", "3", "3"),
            "tirads_composition": ("spongiform", "mixed", "cystic", "solid"),
            "tirads_echogenicity": ("isoechoic", "hyperechoic", "anechoic"),
            "tirads_shape": ("wider_than_tall",),
            "tirads_margin": ("smooth", "smooth", "ill_defined"),
            "tirads_foci": ("none", "none", "comet_tail"),
        },
        "malignant": {
            "tirads_category": ("4a", "4b", "4c", "5"),
            "tirads_composition": ("solid", "solid", "mixed"),
            "tirads_echogenicity": ("hypoechoic", "very_hypoechoic"),
            "tirads_shape": ("taller_than_wide", "wider_than_tall"),
            "tirads_margin": ("lobulated", "irregular", "extrathyroidal_extension"),
            "tirads_foci": ("punctate", "punctate", "macrocalcifications", "peripheral"),
        },
    },
    "liver": {
        "normal": {"liver_steatosis": ("S0",), "liver_fibrosis": ("F0",), "liver_lesion": ("none",)},
        "benign": {"liver_steatosis": ("S0", "S1"), "liver_lesion": ("cyst", "haemangioma", "fnh")},
        "malignant": {"liver_fibrosis": ("F0", "F3", "F4"), "liver_lesion": ("hcc", "metastasis")},
        "steatosis": {"liver_steatosis": ("S1", "S2", "S3"), "liver_lesion": ("none",)},
        "fibrosis": {"liver_fibrosis": ("F1", "F2", "F3"), "liver_lesion": ("none",)},
        "cirrhosis": {"liver_fibrosis": ("F4",), "liver_lesion": ("none",)},
    },
    "lung": {
        "normal": {"lung_a_lines": ("present",), "lung_b_lines": ("absent",),
                   "lung_consolidation": ("absent",), "lung_effusion": ("absent",),
                   "lung_pleural_line": ("smooth",), "lung_sliding": ("present",)},
        "covid": {"lung_a_lines": ("absent",), "lung_b_lines": ("multiple", "confluent"),
                  "lung_consolidation": ("absent", "subpleural"), "lung_effusion": ("absent",),
                  "lung_pleural_line": ("irregular", "thickened", "fragmented"),
                  "lung_sliding": ("present",)},
        "pneumonia": {"lung_a_lines": ("absent",), "lung_b_lines": ("few", "absent"),
                      "lung_consolidation": ("lobar", "subpleural"),
                      "lung_effusion": ("present", "absent"), "lung_pleural_line": ("irregular",),
                      "lung_sliding": ("present",)},
        "viral_pneumonia": {"lung_a_lines": ("absent",), "lung_b_lines": ("multiple", "few"),
                            "lung_consolidation": ("absent", "subpleural"),
                            "lung_effusion": ("absent",), "lung_pleural_line": ("irregular",),
                            "lung_sliding": ("present",)},
    },
}


def pick(rng: np.random.Generator, options: Sequence[T]) -> T:
    """One element of ``options``, drawn with ``rng``."""
    return options[int(rng.integers(len(options)))]


def sample_findings(organ: str, label: str | None, rng: np.random.Generator) -> dict[str, str | None]:
    """Findings (schema codes) consistent with an organ and label."""
    table = _FINDINGS.get(organ, {}).get(label or "normal", {})
    findings: dict[str, str | None] = {key: pick(rng, values) for key, values in table.items()}
    if findings.get("tirads_composition") == "cystic":
        findings["tirads_echogenicity"] = "anechoic"
    elif findings.get("tirads_echogenicity") == "anechoic":
        findings["tirads_echogenicity"] = "isoechoic"
    if findings.get("birads_echo_pattern") == "anechoic":
        findings["birads_posterior"] = "enhancement"
    return findings


_KWAK_SUSPICIOUS = (
    ("tirads_composition", ("solid",)),
    ("tirads_echogenicity", ("hypoechoic", "very_hypoechoic")),
    ("tirads_margin", ("lobulated", "irregular", "extrathyroidal_extension")),
    ("tirads_foci", ("punctate",)),
    ("tirads_shape", ("taller_than_wide",)),
)


def kwak_tirads(findings: dict[str, str | None], label: str) -> str:
    """Kwak TI-RADS category (``2`` .. ``5``) for a nodule's findings.

    Counts Kwak's suspicious features (solid, hypoechoic or markedly
    hypoechoic, lobulated or irregular margins, microcalcifications,
    taller-than-wide): none gives 3 (2 for a cystic or spongiform nodule), one
    4a, two 4b, three or four 4c, five 5. A ``benign`` label stays at 2 or 3 and
    a ``malignant`` one at 4a or above, as the DDTI labels follow the category.
    """
    n = sum(findings.get(key) in values for key, values in _KWAK_SUSPICIOUS)
    if label != "malignant":
        return "2" if findings.get("tirads_composition") in ("cystic", "spongiform") else "3"
    return {0: "4a", 1: "4a", 2: "4b", 3: "4c", 4: "4c"}.get(n, "5")


@dataclass
class SyntheticReport:
    """A report's text, the PHI strings it carries, and the eponyms that must stay."""

    text: str
    phi: list[str] = field(default_factory=list)
    eponyms: list[str] = field(default_factory=list)
    # ``(start, end, PHI type)`` of each planted value, where a writer records them (Chinese reports).
    spans: list[tuple[int, int, str]] = field(default_factory=list)


class _Writer:
    """Collects the PHI strings while a report is composed."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.phi: list[str] = []

    def p(self, value: str) -> str:
        self.phi.append(value)
        return value

    def e(self, value: str) -> str:
        """Mark an eponym (kept as is; the report lists the eponyms found in its text)."""
        return value

    def chance(self, prob: float) -> bool:
        return bool(self.rng.random() < prob)

    def date(self, year: int | None = None) -> str:
        y = int(self.rng.integers(2012, 2024)) if year is None else year
        m, d = int(self.rng.integers(1, 13)), int(self.rng.integers(1, 29))
        style = int(self.rng.integers(6))
        text = (
            f"{m:02d}/{d:02d}/{y}",
            f"{y}-{m:02d}-{d:02d}",
            f"{d} {MONTHS[m - 1]} {y}",
            f"{MONTHS[m - 1]} {d}, {y}",
            f"{d:02d}.{m:02d}.{y}",
            f"{m}/{d}/{str(y)[2:]}",
        )[style]
        return self.p(text)

    def patient(self, female: bool) -> str:
        first = pick(self.rng, FIRST_NAMES_F if female else FIRST_NAMES_M)
        last = pick(self.rng, LAST_NAMES)
        style = int(self.rng.integers(4))
        if style == 0:
            title = pick(self.rng, ("Mrs.", "Ms.")) if female else "Mr."
            return self.p(f"{title} {first} {last}")
        if style == 1:
            return self.p(f"{last.upper()}, {first.upper()}")
        if style == 2:
            return self.p(f"{first} {last}")
        return self.p(f"{last}, {first}")

    def doctor(self, short: bool | None = None) -> str:
        last = pick(self.rng, LAST_NAMES)
        if short is None:
            short = self.chance(0.5)
        if short:
            return self.p(f"Dr. {last}")
        first = pick(self.rng, FIRST_NAMES_F + FIRST_NAMES_M)
        return self.p(pick(self.rng, (f"Dr. {first} {last}", f"{first} {last}, MD")))

    def mrn(self) -> str:
        digits = int(self.rng.integers(10**6, 10**8))
        return self.p(pick(self.rng, (f"{digits:08d}", f"{digits // 10000:04d}-{digits % 10000:04d}",
                                      f"MR{digits}")))

    def accession(self) -> str:
        n = int(self.rng.integers(10**5, 10**7))
        year = int(self.rng.integers(2012, 2024))
        return self.p(pick(self.rng, (f"ACC{year}-{n}", f"A{str(year)[2:]}-{n % 100000:05d}", f"US{n}")))

    def phone(self) -> str:
        a, b, c = int(self.rng.integers(201, 990)), int(self.rng.integers(200, 999)), int(self.rng.integers(0, 10000))
        return self.p(pick(self.rng, (f"({a}) {b}-{c:04d}", f"{a}-{b}-{c:04d}", f"+1 {a} {b} {c:04d}")))

    def age(self) -> int:
        return int(self.rng.integers(90, 100)) if self.chance(0.12) else int(self.rng.integers(19, 86))


def _size_mm(rng: np.random.Generator, lo: int = 5, hi: int = 35) -> tuple[int, int, int]:
    a = int(rng.integers(lo, hi))
    return a, max(3, a - int(rng.integers(1, 6))), max(3, a - int(rng.integers(2, 9)))


def _dims(rng: np.random.Generator, lo: int = 5, hi: int = 35) -> str:
    a, b, c = _size_mm(rng, lo, hi)
    if rng.random() < 0.5:
        return f"{a} x {b} x {c} mm"
    return f"{a / 10:.1f} x {b / 10:.1f} x {c / 10:.1f} cm"


_WORDS = {
    "oval": "oval", "round": "round", "irregular": "irregular",
    "parallel": "parallel", "not_parallel": "non-parallel (taller-than-wide)",
    "circumscribed": "circumscribed", "indistinct": "indistinct", "angular": "angular",
    "microlobulated": "microlobulated", "spiculated": "spiculated",
    "anechoic": "anechoic", "hyperechoic": "hyperechoic", "complex_cystic_solid": "complex cystic and solid",
    "hypoechoic": "hypoechoic", "isoechoic": "isoechoic", "heterogeneous": "heterogeneous",
    "very_hypoechoic": "markedly hypoechoic",
    "cystic": "cystic", "spongiform": "spongiform", "mixed": "mixed cystic and solid", "solid": "solid",
    "smooth": "smooth", "ill_defined": "ill-defined", "lobulated": "lobulated",
    "extrathyroidal_extension": "irregular",
}


def _w(code: str | None, default: str = "") -> str:
    return _WORDS.get(code or "", default)


def _a(word: str) -> str:
    return f"{'an' if word[:1] in 'aeiou' else 'a'} {word}"


def _breast(w: _Writer, label: str | None, f: dict[str, str | None], age: int, side: str) -> tuple[str, str, str, str]:
    rng = w.rng
    history = pick(rng, (
        f"{age}-year-old woman with a palpable lump in the {side} breast.",
        f"{age}-year-old female referred after an abnormal screening mammogram, {side} breast.",
        f"{age} year old woman, {side} breast pain. Family history of breast cancer (mother).",
        f"Follow-up of a known {side} breast finding in a {age}-year-old patient.",
    ))
    technique = pick(rng, (
        f"Targeted grayscale and color {w.e('Doppler')} ultrasound of the {side} breast and axilla "
        "with a high-frequency linear transducer.",
        f"Real-time ultrasound of the {side} breast was performed using a 12-5 MHz linear probe. "
        "Doppler interrogation was also performed.",
    ))
    tissue = {"homogeneous_fat": "homogeneous fatty", "homogeneous_fibroglandular":
              "homogeneous fibroglandular", "heterogeneous": "heterogeneous"}.get(
        f.get("birads_tissue") or "", "heterogeneous")
    category = f.get("birads_category") or ("1" if label == "normal" else "3")
    if label in (None, "normal"):
        findings = (
            f"Background echotexture is {tissue}. No solid or cystic mass is identified in the "
            f"{side} breast. No architectural distortion. No suspicious axillary lymph nodes; "
            "the visualized nodes have a normal fatty hilum."
        )
        impression = f"No sonographic evidence of malignancy in the {side} breast. BI-RADS {category}: negative."
        return history, technique, findings, impression
    clock = int(rng.integers(1, 13))
    cm = int(rng.integers(1, 9))
    posterior = {"enhancement": "posterior acoustic enhancement", "shadowing": "posterior acoustic shadowing",
                 "combined": "a combined posterior pattern", "none": "no posterior features"}[
        f.get("birads_posterior") or "none"]
    calc = " with internal echogenic foci compatible with calcifications" if f.get(
        "birads_calcifications") == "in_mass" else ""
    findings = (
        f"At the {clock} o'clock position, {cm} cm from the nipple, there is {_a(_w(f.get('birads_shape'), 'oval'))}, "
        f"{_w(f.get('birads_echo_pattern'), 'hypoechoic')} mass with "
        f"{_w(f.get('birads_margin'), 'circumscribed')} margins and a "
        f"{_w(f.get('birads_orientation'), 'parallel')} orientation, measuring {_dims(rng)}, "
        f"with {posterior}{calc}. "
    )
    if label == "malignant":
        findings += pick(rng, (
            "Color Doppler shows internal vascularity. ",
            "Increased peripheral and internal flow on Doppler. ",
        )) + pick(rng, ("No axillary lymphadenopathy.", "A morphologically abnormal axillary node with a "
                        "thickened cortex is noted."))
        impression = (
            f"Suspicious {_w(f.get('birads_shape'), 'irregular')} mass in the {side} breast at {clock} o'clock, "
            f"BI-RADS {category.upper()}. Ultrasound-guided core needle biopsy is recommended."
        )
    else:
        findings += "No internal vascularity on Doppler. No axillary lymphadenopathy."
        impression = (
            f"{_w(f.get('birads_shape'), 'oval').capitalize()} circumscribed mass in the {side} breast at "
            f"{clock} o'clock, most likely a fibroadenoma or complicated cyst. BI-RADS {category.upper()}. "
            + ("Short-interval follow-up ultrasound in 6 months." if category == "3" else "Routine follow-up.")
        )
    return history, technique, findings, impression


def _thyroid(w: _Writer, label: str | None, f: dict[str, str | None], age: int, side: str) -> tuple[str, str, str, str]:
    rng = w.rng
    history = pick(rng, (
        f"{age}-year-old with a palpable neck nodule.",
        f"{age}-year-old woman with known {w.e('Hashimoto')} thyroiditis, new nodule on examination.",
        f"Incidental thyroid nodule on CT of the neck in a {age}-year-old man.",
        f"{age}-year-old with hyperthyroidism; rule out {w.e('Graves')} disease.",
    ))
    technique = pick(rng, (
        f"Grayscale and color {w.e('Doppler')} ultrasound of the thyroid gland and neck with a linear transducer.",
        "High-resolution ultrasound of the thyroid was performed in transverse and longitudinal planes, "
        f"with {w.e('Doppler')} evaluation.",
    ))
    rl = f"{int(rng.integers(38, 55))} x {int(rng.integers(12, 20))} x {int(rng.integers(12, 22))} mm"
    ll = f"{int(rng.integers(36, 52))} x {int(rng.integers(11, 19))} x {int(rng.integers(11, 20))} mm"
    isthmus = f"{rng.integers(2, 6)} mm"
    gland = (
        f"The right lobe measures {rl} and the left lobe {ll}; the isthmus is {isthmus} thick. "
    )
    if label in (None, "normal"):
        findings = gland + (
            "The parenchyma is homogeneous with normal echogenicity and normal vascularity on "
            f"{w.e('Doppler')}. No focal nodule. No cervical lymphadenopathy."
        )
        impression = f"Normal thyroid ultrasound. No sonographic features of {w.e('Hashimoto')} thyroiditis."
        return history, technique, findings, impression
    foci = {"none": "no echogenic foci", "comet_tail": "large comet-tail artifacts",
            "macrocalcifications": "coarse macrocalcifications", "peripheral": "peripheral rim calcification",
            "punctate": "punctate echogenic foci (microcalcifications)"}[f.get("tirads_foci") or "none"]
    shape = "taller-than-wide" if f.get("tirads_shape") == "taller_than_wide" else "wider-than-tall"
    category = f.get("tirads_category") or "3"
    findings = gland + (
        f"In the {side} lobe there is {_a(_w(f.get('tirads_composition'), 'solid'))}, "
        f"{_w(f.get('tirads_echogenicity'), 'isoechoic')} nodule, {shape}, with "
        f"{_w(f.get('tirads_margin'), 'smooth')} margins"
        + (" and extrathyroidal extension" if f.get("tirads_margin") == "extrathyroidal_extension" else "")
        + f", {foci}, measuring {_dims(rng, 6, 40)}. "
        + pick(rng, ("Peripheral vascularity on Doppler. ", "Intranodular flow on Doppler. ",
                     "No significant internal flow. "))
        + pick(rng, ("No cervical lymphadenopathy.", "A few reactive-appearing level III lymph nodes."))
    )
    if label == "malignant":
        impression = (
            f"{side.capitalize()} thyroid nodule with suspicious features, TI-RADS {category}. "
            "Fine-needle aspiration is recommended."
        )
    else:
        impression = (
            f"{side.capitalize()} thyroid nodule with benign features, TI-RADS {category}. "
            + pick(rng, ("No FNA required; follow-up in 12 months.", "Likely colloid nodule."))
        )
    return history, technique, findings, impression


def _liver(w: _Writer, label: str | None, f: dict[str, str | None], age: int, side: str) -> tuple[str, str, str, str]:
    rng = w.rng
    history = pick(rng, (
        f"{age}-year-old with abnormal liver function tests.",
        f"{age}-year-old with chronic hepatitis B, surveillance ultrasound.",
        f"Right upper quadrant pain in a {age}-year-old patient.",
        f"{age}-year-old with obesity and type 2 diabetes; assess for fatty liver.",
    ))
    technique = (
        f"Grayscale and color {w.e('Doppler')} ultrasound of the upper abdomen with a curvilinear transducer."
    )
    span = f"{rng.integers(130, 175) / 10:.1f} cm"
    steat = f.get("liver_steatosis")
    fib = f.get("liver_fibrosis")
    if steat in ("S1", "S2", "S3"):
        echo = {"S1": "mildly increased echogenicity relative to the renal cortex, with clear vessel walls",
                "S2": "moderately increased echogenicity with blurring of the intrahepatic vessel walls",
                "S3": "markedly increased echogenicity with poor visualization of the diaphragm and "
                      "posterior right lobe"}[steat]
    elif fib in ("F3", "F4"):
        echo = "coarse, heterogeneous echotexture"
    else:
        echo = "normal echogenicity and homogeneous echotexture"
    surface = "nodular" if fib in ("F3", "F4") else "smooth"
    findings = f"The liver measures {span} in craniocaudal span, with {echo} and a {surface} surface. "
    lesion = f.get("liver_lesion") or "none"
    segment = pick(rng, ("IV", "V", "VI", "VII", "VIII"))
    if lesion == "cyst":
        findings += (f"Anechoic well-defined cyst in {w.e('Couinaud')} segment {segment}, {_dims(rng)}, "
                     "with posterior enhancement. ")
    elif lesion == "haemangioma":
        findings += (f"Well-defined homogeneous hyperechoic lesion in segment {segment}, {_dims(rng)}, "
                     "without internal flow. ")
    elif lesion == "fnh":
        findings += (f"Isoechoic lesion in segment {segment}, {_dims(rng)}, "
                     "with a central spoke-wheel vascular pattern. ")
    elif lesion in ("hcc", "mass"):
        findings += (f"Heterogeneous hypoechoic mass with a hypoechoic halo in segment {segment}, "
                     f"{_dims(rng, 15, 60)}, with internal arterial flow. ")
    elif lesion == "metastasis":
        findings += "Multiple hypoechoic target lesions with a bull's-eye appearance, the largest in segment " \
                    f"{segment} measuring {_dims(rng)}. "
    else:
        findings += "No focal hepatic lesion. "
    findings += pick(rng, (
        f"The portal vein is patent with hepatopetal flow on {w.e('Doppler')}. ",
        "Main portal vein patent, hepatopetal. ",
    ))
    findings += pick(rng, (
        f"No ascites; {w.e('Morison')}'s pouch is clear. ",
        "No free fluid. ",
    )) + "Gallbladder unremarkable. No biliary dilatation."
    parts = []
    if steat in ("S1", "S2", "S3"):
        parts.append({"S1": "Mild", "S2": "Moderate", "S3": "Severe"}[steat] + " hepatic steatosis.")
    if fib == "F4":
        parts.append("Morphologic features of cirrhosis.")
    elif fib in ("F2", "F3"):
        parts.append("Coarsened echotexture, compatible with chronic liver disease.")
    if label == "malignant":
        parts.append(f"Focal liver lesion in segment {segment} suspicious for malignancy; "
                     "recommend multiphase contrast-enhanced CT or MRI.")
    elif label == "benign" and lesion != "none":
        parts.append(f"Benign-appearing focal liver lesion in segment {segment}"
                     + {"cyst": " (simple cyst).", "haemangioma": ", likely haemangioma.",
                        "fnh": ", likely focal nodular hyperplasia."}.get(lesion, "."))
    if not parts:
        parts.append("Normal ultrasound appearance of the liver.")
    return history, technique, findings, " ".join(parts)


def _lung(w: _Writer, label: str | None, f: dict[str, str | None], age: int, side: str) -> tuple[str, str, str, str]:
    rng = w.rng
    history = pick(rng, (
        f"{age}-year-old with fever, cough and shortness of breath.",
        f"{age}-year-old with hypoxia; SARS-CoV-2 PCR pending.",
        f"Point-of-care lung ultrasound in a {age}-year-old with dyspnea.",
    ))
    technique = f"Point-of-care lung ultrasound of the {side} hemithorax, 6-zone protocol, convex probe."
    bits = [
        "Lung sliding present." if f.get("lung_sliding") != "absent" else "Absent lung sliding.",
        {"smooth": "The pleural line is smooth.", "irregular": "The pleural line is irregular.",
         "thickened": "The pleural line is thickened.", "fragmented": "The pleural line is fragmented."}[
            f.get("lung_pleural_line") or "smooth"],
        "A-lines are seen." if f.get("lung_a_lines") == "present" else "No A-lines.",
        {"absent": "No B-lines.", "few": "Few scattered B-lines.",
         "multiple": "Multiple B-lines (3 or more per intercostal space).",
         "confluent": "Confluent B-lines (white lung)."}[f.get("lung_b_lines") or "absent"],
    ]
    cons = f.get("lung_consolidation")
    if cons == "subpleural":
        bits.append("Small subpleural consolidations.")
    elif cons == "lobar":
        bits.append("Lobar consolidation with dynamic air bronchograms.")
    bits.append("Small pleural effusion." if f.get("lung_effusion") == "present" else "No pleural effusion.")
    impression = {
        "normal": "Normal lung ultrasound (A-line pattern).",
        "covid": "Interstitial syndrome with pleural irregularities, consistent with COVID-19 pneumonia.",
        "pneumonia": "Consolidation with air bronchograms, consistent with bacterial pneumonia.",
        "viral_pneumonia": "B-line pattern compatible with viral pneumonia.",
    }.get(label or "normal", "See findings.")
    return history, technique, " ".join(bits), impression


_ORGAN_WRITERS = {"breast": _breast, "thyroid": _thyroid, "liver": _liver, "lung": _lung}
_EXAMS = {
    "breast": "US BREAST {SIDE} LIMITED",
    "thyroid": "US THYROID AND SOFT TISSUES OF NECK",
    "liver": "US ABDOMEN LIMITED (LIVER)",
    "lung": "POCUS LUNG",
}


def make_report(
    organ: str, label: str | None, findings: dict[str, str | None], rng: np.random.Generator
) -> SyntheticReport:
    """An English ultrasound report with PHI, consistent with label and findings."""
    w = _Writer(rng)
    female = True if organ == "breast" else w.chance(0.7)
    age = w.age()
    side = pick(rng, ("right", "left"))
    history, technique, body, impression = _ORGAN_WRITERS[organ](w, label, findings, age, side)
    header = [f"{w.p(pick(rng, HOSPITALS).upper())} - DEPARTMENT OF RADIOLOGY"]
    header.append(f"Patient: {w.patient(female)}    MRN: {w.mrn()}    Accession: {w.accession()}")
    year = int(rng.integers(2012, 2024))
    exam_date = w.date(year)
    header.append(f"Exam date: {exam_date}    DOB: {w.date(year - age - 1)}")
    header.append(f"Referring physician: {w.doctor()}    Phone: {w.phone()}")
    header.append(f"EXAM: {_EXAMS[organ].format(SIDE=side.upper())}")
    if age > 89:
        w.phi.append(str(age))
    sections = [
        "\n".join(header),
        f"CLINICAL HISTORY: {history}",
        f"TECHNIQUE: {technique}",
        f"COMPARISON: {'None.' if w.chance(0.5) else 'Prior ultrasound dated ' + w.date(year - 1) + '.'}",
        f"FINDINGS: {body}",
        f"IMPRESSION: {impression}",
    ]
    if w.chance(0.5):
        sections.append(
            f"Findings discussed with {w.doctor(short=True)} by telephone on {w.p(exam_date)}, "
            f"callback number {w.phone()}."
        )
    sections.append(f"Electronically signed by: {w.doctor(short=False)} on {w.p(exam_date)}")
    text = "\n\n".join(sections)
    return SyntheticReport(text=text, phi=w.phi, eponyms=[e for e in EPONYMS if e in text])


_ES = {
    "solid": "sólido", "predominantly solid": "predominantemente sólido",
    "predominantly cystic": "predominantemente quístico", "spongiform": "espongiforme", "dense": "denso",
    "hyperechogenicity": "hiperecoico", "isoechogenicity": "isoecoico", "hypoechogenicity": "hipoecoico",
    "marked hypoechogenicity": "marcadamente hipoecoico",
    "well defined": "bordes bien definidos", "well defined smooth": "bordes lisos bien definidos",
    "ill defined": "bordes mal definidos", "microlobulated": "bordes microlobulados",
    "macrolobulated": "bordes macrolobulados", "spiculated": "bordes espiculados",
    "non": "sin calcificaciones", "microcalcifications": "con microcalcificaciones",
    "microcalcification": "con microcalcificación", "macrocalcifications": "con macrocalcificaciones",
    "macrocalcification": "con macrocalcificación",
}


def ddti_reporteco(descriptors: dict[str, str], rng: np.random.Generator) -> str:
    """A short echography report in Spanish or English from DDTI descriptors (may be empty)."""
    if rng.random() < 0.35:
        return ""
    side_es, side_en = pick(rng, (("derecho", "right"), ("izquierdo", "left")))
    a, b, _ = _size_mm(rng, 6, 30)
    comp, echo = descriptors["composition"], descriptors["echogenicity"]
    margins, calc, tirads = descriptors["margins"], descriptors["calcifications"], descriptors["tirads"]
    if rng.random() < 0.6:
        return (
            f"Tiroides de tamaño y ecogenicidad normales. Nódulo {_ES.get(comp, comp)} "
            f"{_ES.get(echo, echo)} en el lóbulo {side_es} de {a} x {b} mm, "
            f"{_ES.get(margins, margins)}, {_ES.get(calc, calc)}. TI-RADS {tirads}."
        )
    calc_en = "no calcifications" if calc == "non" else calc
    echo_en = echo.replace("echogenicity", "echoic").replace("marked ", "markedly ")
    return (
        f"Thyroid gland of normal size. {comp.capitalize()} {echo_en} nodule in the {side_en} lobe, "
        f"{a} x {b} mm, {margins} margins, {calc_en}. TI-RADS {tirads}."
    )


# -- Chinese reports ---------------------------------------------------------------
# As in the public Chinese report corpora: a letterhead with the hospital and the
# patient's fields, 超声所见 (findings) and 超声提示 (impression), and a sign-off,
# written plainly or word-segmented with a space between words. A "|" in the
# phrases below marks a word boundary: it becomes a space in segmented text and
# disappears otherwise; a plain space stays a space in both.

ZH_SURNAMES = ("王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙", "马", "朱", "胡", "郭",
               "欧阳", "司马")
ZH_GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明秀霞平刚桂英华玉兰萍红建国文辉力鹏飞宇浩欣怡晨阳雪梅丹琳颖婷佳慧"
# Hospitals as segmented words (joined without spaces in plain text).
ZH_HOSPITALS = ("浙江省|人民医院", "华东|第一|人民医院", "江南大学|附属|医院", "北京|协和|医院",
                "复旦大学|附属|肿瘤|医院", "滨海市|中心|医院", "南山区|妇幼|保健院")
ZH_ORGANS = {"breast": "乳腺", "thyroid": "甲状腺", "liver": "肝脏", "lung": "肺"}
ZH_LABELS = {"normal": "正常", "benign": "良性", "malignant": "恶性"}
_ZH_NUMERALS = "〇一二三四五六七八九"


def _zh_number(n: int) -> str:
    """1..31 in Chinese numerals (十二, 二十一)."""
    tens, ones = divmod(n, 10)
    return ("" if tens == 0 else ("十" if tens == 1 else _ZH_NUMERALS[tens] + "十")) + (
        _ZH_NUMERALS[ones] if ones else "")


class _ZhText:
    """Composes a Chinese report, plain or word-segmented, and records where each PHI value went."""

    def __init__(self, rng: np.random.Generator, segmented: bool) -> None:
        self.rng = rng
        self.segmented = segmented
        self.text = ""
        self.phi: list[str] = []
        self.spans: list[tuple[int, int, str]] = []

    def _append(self, piece: str, gap: bool) -> int:
        if self.text and not self.text.endswith("\n") and not piece.startswith("\n") and (self.segmented or gap):
            self.text += " "
        start = len(self.text)
        self.text += piece
        return start

    def add(self, phrase: str, gap: bool = False) -> None:
        """Plain text (``|`` marks word boundaries); ``gap`` puts a space before it in plain text too."""
        self._append(phrase.replace("|", " " if self.segmented else ""), gap)

    def value(self, kind: str, phrase: str, gap: bool = False) -> None:
        """A PHI value of type ``kind`` (``[NAME]``, ``[DATE]``, ...)."""
        piece = phrase.replace("|", " " if self.segmented else "")
        start = self._append(piece, gap)
        self.phi.append(piece)
        self.spans.append((start, start + len(piece), kind))

    def name(self) -> str:
        surname = pick(self.rng, ZH_SURNAMES)
        return surname + "".join(pick(self.rng, ZH_GIVEN) for _ in range(1 if self.rng.random() < 0.4 else 2))

    def date(self, year: int, time: bool = False) -> str:
        m, d = int(self.rng.integers(1, 13)), int(self.rng.integers(1, 29))
        style = int(self.rng.integers(5))
        text = (
            f"{year}|年|{m}|月|{d}|日",
            f"{year}|-|{m:02d}|-|{d:02d}",
            f"{year}|/|{m}|/|{d}",
            f"{year}.{m:02d}.{d:02d}",
            "".join(_ZH_NUMERALS[int(c)] for c in str(year)) + f"年|{_zh_number(m)}月|{_zh_number(d)}日",
        )[style]
        if time and style < 4:
            text += f" {int(self.rng.integers(8, 18))}:{int(self.rng.integers(0, 60)):02d}"
        return text

    def phone(self) -> str:
        n = int(self.rng.integers(10**7, 10**8))
        a = pick(self.rng, ("138", "139", "150", "186", "177"))
        return pick(self.rng, (f"{a}{n:08d}", f"{a}-{n // 10000:04d}-{n % 10000:04d}",
                               f"0571-{n:08d}", f"(021){n:08d}"))


def _zh_size(rng: np.random.Generator, lo: int = 5, hi: int = 35) -> str:
    a, b, _ = _size_mm(rng, lo, hi)
    return pick(rng, (f"{a / 10:.1f}×{b / 10:.1f}cm", f"{a / 10:.1f} x {b / 10:.1f} cm", f"{a}×{b}mm"))


_ZH_WORDS = {
    "oval": "椭圆形", "round": "圆形", "irregular": "不规则",
    "parallel": "平行|生长", "not_parallel": "非平行|生长",
    "circumscribed": "清晰", "indistinct": "不清", "angular": "成角", "microlobulated": "呈|微分叶|状",
    "spiculated": "呈|毛刺|状",
    "anechoic": "无回声", "hypoechoic": "低回声", "isoechoic": "等回声", "hyperechoic": "高回声",
    "heterogeneous": "不均匀|回声", "very_hypoechoic": "极低回声", "complex_cystic_solid": "混合|回声",
    "cystic": "囊性", "spongiform": "海绵状", "mixed": "囊实性", "solid": "实性",
    "smooth": "清晰", "ill_defined": "模糊", "lobulated": "呈|分叶|状", "extrathyroidal_extension": "不规则",
}


def _zh_breast(t: _ZhText, label: str, f: dict[str, str | None], side: str) -> tuple[str, str]:
    category = f.get("birads_category") or ("1" if label == "normal" else "3")
    if label == "normal":
        return ("双侧|乳腺|腺体|结构|清晰|，|未见|明显|占位性|病变|。|双侧|腋窝|未见|明显|肿大|淋巴结|。",
                f"双侧|乳腺|未见|明显|异常|，|BI-RADS {category}|类|。")
    rng = t.rng
    posterior = {"enhancement": "增强", "shadowing": "衰减", "combined": "混合性|改变", "none": "无|明显|变化"}[
        f.get("birads_posterior") or "none"]
    echo, shape = _ZH_WORDS[f.get("birads_echo_pattern") or "hypoechoic"], _ZH_WORDS[f.get("birads_shape") or "oval"]
    margin = _ZH_WORDS[f.get("birads_margin") or "circumscribed"]
    orientation = _ZH_WORDS[f.get("birads_orientation") or "parallel"]
    findings = (
        f"{side}|乳腺|{int(rng.integers(1, 13))}|点钟|方向|可见|一|{echo}|结节|，|大小|约|{_zh_size(rng)}|，|形态|"
        f"{shape}|，|边界|{margin}|，|{orientation}|，|后方|回声|{posterior}|。|CDFI|：|"
        + ("内部|可见|血流|信号|。" if label == "malignant" else "未见|明显|血流|信号|。")
    )
    advice = "建议|穿刺|活检" if label == "malignant" else "建议|定期|复查"
    return findings, f"{side}|乳腺|实性|结节|，|BI-RADS {category}|类|，|{advice}|。"


def _zh_thyroid(t: _ZhText, label: str, f: dict[str, str | None], side: str) -> tuple[str, str]:
    if label == "normal":
        return ("甲状腺|大小|形态|正常|，|包膜|光整|，|实质|回声|均匀|。|CDFI|：|血流|信号|未见|明显|异常|。"
                "|双侧|颈部|未见|明显|肿大|淋巴结|。", "甲状腺|未见|明显|异常|。")
    lobe = "左叶" if side == "左侧" else "右叶"
    foci = {"none": "内|未见|强回声|点", "comet_tail": "可见|彗星尾|征", "macrocalcifications": "内|可见|粗大|钙化",
            "peripheral": "可见|周边|环状|钙化", "punctate": "内|可见|微钙化"}[f.get("tirads_foci") or "none"]
    shape = "纵横比|大于|1" if f.get("tirads_shape") == "taller_than_wide" else "纵横比|小于|1"
    comp = _ZH_WORDS[f.get("tirads_composition") or "solid"]
    findings = (
        f"甲状腺|{lobe}|可见|一|{comp}|{_ZH_WORDS[f.get('tirads_echogenicity') or 'isoechoic']}|结节|，|大小|约|"
        f"{_zh_size(t.rng, 6, 40)}|，|{shape}|，|边界|{_ZH_WORDS[f.get('tirads_margin') or 'smooth']}|，|{foci}|。"
        "|CDFI|：|" + ("结节|内|可见|血流|信号|。" if label == "malignant" else "结节|周边|可见|血流|信号|。")
    )
    advice = "建议|细针|穿刺|活检" if label == "malignant" else "建议|定期|复查"
    return findings, f"甲状腺|{lobe}|{comp}|结节|，|TI-RADS {f.get('tirads_category') or '3'}|类|，|{advice}|。"


def _zh_liver(t: _ZhText, label: str, f: dict[str, str | None], side: str) -> tuple[str, str]:
    rng = t.rng
    steat, fib = f.get("liver_steatosis"), f.get("liver_fibrosis")
    degree = {"S1": "轻度", "S2": "中度", "S3": "重度"}.get(steat or "")
    if degree:
        echo = "增强|，|后方|回声|衰减"
    elif fib in ("F3", "F4"):
        echo = "增粗|不均匀"
    else:
        echo = "均匀"
    findings = f"肝脏|大小|形态|正常|，|包膜|光滑|，|实质|回声|{echo}|。"
    segment = pick(rng, ("Ⅳ", "Ⅴ", "Ⅵ", "Ⅶ", "Ⅷ"))
    lesion = f.get("liver_lesion") or "none"
    impressions = [f"脂肪肝|（|{degree}|）|。"] if degree else []
    if lesion == "cyst":
        findings += (f"|肝|{segment}|段|可见|一|无回声|区|，|大小|约|{_zh_size(rng)}|，|边界|清晰|，"
                     "|后方|回声|增强|。")
        impressions.append("肝|囊肿|。")
    elif lesion in ("haemangioma", "fnh"):
        findings += (f"|肝|{segment}|段|可见|一|高回声|结节|，|大小|约|{_zh_size(rng)}|，|边界|清晰|，"
                     "|内部|未见|血流|信号|。")
        impressions.append("肝|血管瘤|。")
    elif lesion != "none":
        findings += (f"|肝|{segment}|段|可见|一|低回声|团块|，|大小|约|{_zh_size(rng, 15, 60)}|，|边界|不清|，"
                     "|内部|可见|血流|信号|。")
        impressions.append("肝内|实性|占位|，|建议|进一步|增强|CT|检查|。")
    else:
        findings += "|肝内|未见|明显|占位性|病变|。"
    findings += "|门静脉|主干|内径|正常|，|血流|通畅|。"
    return findings, "|".join(impressions) or "肝脏|未见|明显|异常|。"


_ZH_ORGAN_WRITERS = {"breast": _zh_breast, "thyroid": _zh_thyroid, "liver": _zh_liver}


def make_report_zh(
    organ: str, label: str, findings: dict[str, str | None], rng: np.random.Generator, segmented: bool = False
) -> SyntheticReport:
    """A Chinese ultrasound report with PHI (names, dates, hospital, ids, phone), plain or word-segmented.

    ``phi`` lists each planted value as written and ``spans`` where it stands
    with its type, so a de-identified text can be compared with the text
    minus exactly those spans.
    """
    t = _ZhText(rng, segmented)
    side = pick(rng, ("左侧", "右侧"))
    female = True if organ == "breast" else bool(rng.random() < 0.7)
    age = int(rng.integers(90, 100)) if rng.random() < 0.12 else int(rng.integers(19, 86))
    year = int(rng.integers(2012, 2024))
    findings_text, impression = _ZH_ORGAN_WRITERS[organ](t, label, findings, side)
    t.value("HOSPITAL", pick(rng, ZH_HOSPITALS))
    t.add("超声|检查|报告单", gap=True)
    t.add("\n姓名|：")
    t.value("NAME", t.name())
    t.add(f"性别|：|{'女' if female else '男'}", gap=True)
    t.add("年龄|：", gap=True)
    if age > 89:
        t.value("AGE", str(age))
        t.add("岁")
    else:
        t.add(f"{age}|岁")
    t.add(pick(rng, ("门诊号|：", "住院号|：", "ID|：")), gap=True)
    t.value("ID", f"{int(rng.integers(10**7, 10**8))}")
    if rng.random() < 0.5:
        t.add("检查号|：", gap=True)
        t.value("ID", f"US{year}{int(rng.integers(10**5, 10**6))}")
    t.add("\n检查|日期|：")
    t.value("DATE", t.date(year, time=bool(rng.random() < 0.4)))
    t.add("联系|电话|：", gap=True)
    t.value("PHONE", t.phone())
    t.add(f"\n检查|部位|：|{ZH_ORGANS[organ]}")
    t.add("\n超声|所见|：")
    t.add(findings_text)
    if rng.random() < 0.3:
        t.add("已|与|临床")
        t.value("NAME", t.name())
        t.add("医生|沟通|。")
    t.add("\n超声|提示|：")
    t.add(impression)
    t.add("\n报告|医生|：")
    t.value("NAME", t.name())
    t.add("审核|医生|：", gap=True)
    t.value("NAME", t.name())
    t.add("报告|日期|：", gap=True)
    t.value("DATE", t.date(year))
    return SyntheticReport(text=t.text, phi=t.phi, spans=t.spans)
