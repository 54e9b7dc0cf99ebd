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
        findings += f"Anechoic well-defined cyst in {w.e('Couinaud')} segment {segment}, {_dims(rng)}, with posterior enhancement. "
    elif lesion == "haemangioma":
        findings += f"Well-defined homogeneous hyperechoic lesion in segment {segment}, {_dims(rng)}, without internal flow. "
    elif lesion == "fnh":
        findings += f"Isoechoic lesion in segment {segment}, {_dims(rng)}, with a central spoke-wheel vascular pattern. "
    elif lesion in ("hcc", "mass"):
        findings += (f"Heterogeneous hypoechoic mass with a hypoechoic halo in segment {segment}, {_dims(rng, 15, 60)}, "
                     "with internal arterial flow. ")
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
