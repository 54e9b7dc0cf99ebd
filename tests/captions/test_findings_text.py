"""Findings matcher: negation, lexicon, phantom-report agreement and contradictions."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from echocaptions.captions.reports.findings_text import ABSENCE, FindingsMatcher, Statement
from echocaptions.schema import FINDINGS_BY_ORGAN, FINDINGS_VOCABULARY, LABELS
from echocaptions.synth.reports import make_report, sample_findings


@pytest.fixture(scope="module")
def matcher() -> FindingsMatcher:
    return FindingsMatcher()


def _triples(matcher: FindingsMatcher, text: str, organ: str | None) -> set[tuple[str, str, bool]]:
    return {(s.field, s.value, s.negated) for s in matcher.statements(text, organ)}


# (organ, sentence, statements that must be found, statements that must not be found)
NEGATION_CASES: list[tuple[str, str, set, set]] = [
    ("breast", "No suspicious calcifications.", {("birads_calcifications", "present", True)},
     {("birads_calcifications", "present", False)}),
    ("thyroid", "No suspicious calcifications.", {("tirads_foci", "present", True)},
     {("tirads_foci", "punctate", False)}),
    ("lung", "No B-lines.", {("lung_b_lines", "present", True)}, set()),
    ("lung", "B-lines are not seen.", {("lung_b_lines", "present", True)}, set()),
    ("lung", "A-lines were not identified.", {("lung_a_lines", "present", True)}, set()),
    ("breast", "No evidence of malignancy.", {("label", "malignant", True)}, {("label", "malignant", False)}),
    ("breast", "Negative for malignancy.", {("label", "malignant", True)}, set()),
    ("thyroid", "The nodule is not taller than wide.", {("tirads_shape", "taller_than_wide", True)},
     {("tirads_shape", "taller_than_wide", False)}),
    ("thyroid", "No change in the hypoechoic nodule.", {("tirads_echogenicity", "hypoechoic", False),
                                                        ("lesion", "present", False)}, set()),
    ("thyroid", "Not only hypoechoic but also taller-than-wide.",
     {("tirads_echogenicity", "hypoechoic", False), ("tirads_shape", "taller_than_wide", False)}, set()),
    ("liver", "No cyst but a solid mass in segment VI.",
     {("liver_lesion", "cyst", True), ("liver_lesion", "mass", False)}, {("liver_lesion", "mass", True)}),
    ("breast", "Oval mass with no posterior features.",
     {("birads_shape", "oval", False), ("birads_posterior", "present", True)}, set()),
    ("thyroid", "Solid nodule without echogenic foci.",
     {("tirads_composition", "solid", False), ("tirads_foci", "present", True)}, set()),
    ("liver", "No focal lesion.", {("liver_lesion", "mass", True), ("lesion", "present", True)}, set()),
    ("lung", "A-lines absent, pleural effusion is absent.",
     {("lung_a_lines", "present", True), ("lung_effusion", "present", True)}, set()),
    ("lung", "Absent lung sliding.", {("lung_sliding", "present", True)}, set()),
    ("lung", "Lung sliding is present; B-lines are absent.",
     {("lung_sliding", "present", False), ("lung_b_lines", "present", True)}, set()),
    ("breast", "The mass is not parallel to the skin.", {("birads_orientation", "not_parallel", False)}, set()),
    ("breast", "Non-circumscribed margins.", {("birads_margin", "circumscribed", True)}, set()),
    ("liver", "Free of focal lesions; no ascites.", {("liver_lesion", "mass", True)}, set()),
    ("liver", "Metastasis was excluded.", {("liver_lesion", "metastasis", True)}, set()),
    ("liver", "A haemangioma cannot be excluded.", {("liver_lesion", "haemangioma", False)},
     {("liver_lesion", "haemangioma", True)}),
    ("thyroid", "No microcalcifications, however coarse macrocalcifications are present.",
     {("tirads_foci", "punctate", True), ("tirads_foci", "macrocalcifications", False)}, set()),
    ("lung", "No consolidation, although there is a small pleural effusion.",
     {("lung_consolidation", "present", True), ("lung_effusion", "present", False)}, set()),
    ("liver", "No steatosis.", {("liver_steatosis", "present", True), ("label", "steatosis", True)}, set()),
    ("liver", "Mild hepatic steatosis, no evidence of cirrhosis.",
     {("liver_steatosis", "S1", False), ("liver_fibrosis", "F4", True)}, {("liver_fibrosis", "F4", False)}),
    ("breast", "Simple cyst, which is not suspicious for malignancy.",
     {("lesion", "present", False), ("label", "malignant", True)}, {("lesion", "present", True)}),
    ("lung", "COVID-19 pneumonia; no bacterial pneumonia.",
     {("label", "covid", False), ("label", "pneumonia", True)}, set()),
    ("breast", "No solid or cystic mass is identified.", {("lesion", "present", True)}, set()),
    ("thyroid", "Hypoechoic nodule. No other nodules.", {("lesion", "present", False)},
     {("lesion", "present", True)}),
    ("breast", "No mass. Hypoechoic area without shadowing.",
     {("lesion", "present", True), ("birads_echo_pattern", "hypoechoic", False),
      ("birads_posterior", "shadowing", True)}, set()),
    ("liver", "There is no evidence of focal hepatic lesion which would suggest malignancy.",
     {("liver_lesion", "mass", True), ("label", "malignant", False)}, set()),
    ("lung", "The patient denies cough. No pleural effusion is seen.", {("lung_effusion", "present", True)}, set()),
    ("thyroid", "Consolidation is ruled out.", set(), {("tirads_foci", "present", False)}),
    ("lung", "No pleural effusion and preserved lung sliding.",
     {("lung_effusion", "present", True), ("lung_sliding", "present", False)}, set()),
    ("lung", "A-lines, lung sliding and no B-lines, consistent with normal aeration.",
     {("lung_b_lines", "present", True), ("label", "normal", False)}, {("label", "normal", True)}),
    ("thyroid", "Cystic nodule, no suspicious features, TI-RADS 1.", {("tirads_category", "1", False)},
     {("tirads_category", "1", True)}),
]


@pytest.mark.parametrize(("organ", "text", "present", "absent"), NEGATION_CASES)
def test_negation(matcher: FindingsMatcher, organ: str, text: str, present: set, absent: set) -> None:
    found = _triples(matcher, text, organ)
    assert present <= found, found
    assert not (absent & found), found


@pytest.mark.parametrize(
    ("organ", "text", "expected"),
    [
        ("breast", "No suspicious calcifications.", {}),
        ("thyroid", "No suspicious calcifications.", {}),
        ("lung", "No B-lines.", {"lung_b_lines": "absent"}),
        ("lung", "B-lines are not seen.", {"lung_b_lines": "absent"}),
        ("breast", "Oval mass with no posterior features.", {"birads_shape": "oval", "birads_posterior": "none"}),
        ("thyroid", "No echogenic foci.", {"tirads_foci": "none"}),
        ("liver", "No focal lesion.", {"liver_lesion": "none"}),
        ("liver", "No cyst but a solid mass.", {"liver_lesion": "mass"}),
        ("thyroid", "The nodule is not taller than wide.", {"tirads_shape": "wider_than_tall"}),
        ("thyroid", "No change in the hypoechoic nodule.", {"tirads_echogenicity": "hypoechoic"}),
        ("lung", "Absent lung sliding.", {"lung_sliding": "absent"}),
        ("liver", "No evidence of steatosis or fibrosis.", {"liver_steatosis": "S0", "liver_fibrosis": "F0"}),
        ("liver", "Possible haemangioma.", {}),
        ("breast", "No posterior shadowing.", {}),
        ("thyroid", "No microcalcifications.", {}),
    ],
)
def test_findings_from_negation(matcher: FindingsMatcher, organ: str, text: str, expected: dict) -> None:
    assert matcher.findings(text, organ) == expected


@pytest.mark.parametrize(
    ("text", "field", "value"),
    [
        ("BI-RADS 4a", "birads_category", "4a"),
        ("BIRADS category 3", "birads_category", "3"),
        ("BI-RADS: 5", "birads_category", "5"),
        ("BI-RADS 4C.", "birads_category", "4c"),
        ("TR5", "tirads_category", "5"),
        ("TI-RADS 4", "tirads_category", "4"),
        ("ACR TI-RADS category 5", "tirads_category", "5"),
        ("Kwak 4b", "tirads_category", "4b"),
        ("TI-RADS points: 5", "tirads_category", "4"),
        ("total 7 points", "tirads_category", "5"),
        ("taller-than-wide", "tirads_shape", "taller_than_wide"),
        ("wider than tall", "tirads_shape", "wider_than_tall"),
        ("markedly hypoechoic", "tirads_echogenicity", "very_hypoechoic"),
        ("very hypoechoic", "tirads_echogenicity", "very_hypoechoic"),
        ("hyperechogenicity", "tirads_echogenicity", "hyperechoic"),
        ("mixed cystic and solid", "tirads_composition", "mixed"),
        ("spongiform", "tirads_composition", "spongiform"),
        ("ill-defined margins", "tirads_margin", "ill_defined"),
        ("lobulated margins", "tirads_margin", "lobulated"),
        ("extrathyroidal extension", "tirads_margin", "extrathyroidal_extension"),
        ("large comet-tail artifacts", "tirads_foci", "comet_tail"),
        ("microcalcifications", "tirads_foci", "punctate"),
        ("punctate echogenic foci", "tirads_foci", "punctate"),
        ("peripheral rim calcification", "tirads_foci", "peripheral"),
        ("coarse macrocalcifications", "tirads_foci", "macrocalcifications"),
        ("non-parallel", "birads_orientation", "not_parallel"),
        ("not parallel", "birads_orientation", "not_parallel"),
        ("spiculated margins", "birads_margin", "spiculated"),
        ("microlobulated", "birads_margin", "microlobulated"),
        ("angular margins", "birads_margin", "angular"),
        ("indistinct", "birads_margin", "indistinct"),
        ("complex cystic and solid", "birads_echo_pattern", "complex_cystic_solid"),
        ("posterior acoustic shadowing", "birads_posterior", "shadowing"),
        ("a combined posterior pattern", "birads_posterior", "combined"),
        ("calcifications outside the mass", "birads_calcifications", "outside_mass"),
        ("intraductal calcifications", "birads_calcifications", "intraductal"),
        ("homogeneous fibroglandular background echotexture", "birads_tissue", "homogeneous_fibroglandular"),
        ("Background echotexture is heterogeneous", "birads_tissue", "heterogeneous"),
        ("moderate hepatic steatosis", "liver_steatosis", "S2"),
        ("steatosis grade 3", "liver_steatosis", "S3"),
        ("mildly increased echogenicity", "liver_steatosis", "S1"),
        ("METAVIR F2", "liver_fibrosis", "F2"),
        ("bridging fibrosis", "liver_fibrosis", "F3"),
        ("cirrhosis", "liver_fibrosis", "F4"),
        ("hemangioma", "liver_lesion", "haemangioma"),
        ("FNH", "liver_lesion", "fnh"),
        ("hepatocellular carcinoma", "liver_lesion", "hcc"),
        ("multiple target lesions", "liver_lesion", "metastasis"),
        ("metastases", "liver_lesion", "metastasis"),
        ("coalescent B-lines", "lung_b_lines", "confluent"),
        ("white lung", "lung_b_lines", "confluent"),
        ("few B-lines", "lung_b_lines", "few"),
        ("numerous B lines", "lung_b_lines", "multiple"),
        ("lobar consolidation", "lung_consolidation", "lobar"),
        ("subpleural consolidations", "lung_consolidation", "subpleural"),
        ("pleural thickening", "lung_pleural_line", "thickened"),
        ("fragmented pleural line", "lung_pleural_line", "fragmented"),
        ("the pleural line is smooth", "lung_pleural_line", "smooth"),
        ("lung point", "lung_sliding", "absent"),
    ],
)
def test_lexicon(matcher: FindingsMatcher, text: str, field: str, value: str) -> None:
    organ = {"birads": "breast", "tirads": "thyroid"}.get(field.split("_")[0], field.split("_")[0])
    assert matcher.findings(text, organ).get(field) == value
    assert (field, value, False) in _triples(matcher, text, None)


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("Malignant.", "malignant"),
        ("Findings suspicious for malignancy.", "malignant"),
        ("Papillary carcinoma.", "malignant"),
        ("Benign-appearing nodule.", "benign"),
        ("Probably benign.", "benign"),
        ("Normal thyroid ultrasound.", "normal"),
        ("Unremarkable study.", "normal"),
        ("COVID-19.", "covid"),
        ("Viral pneumonia.", "viral_pneumonia"),
        ("Bacterial pneumonia.", "pneumonia"),
    ],
)
def test_labels(matcher: FindingsMatcher, text: str, label: str) -> None:
    assert ("label", label, False) in _triples(matcher, text, None)


def test_statement_spans_and_sentences(matcher: FindingsMatcher) -> None:
    text = "Lung sliding present. No B-lines.\n\nIMPRESSION: Normal lung ultrasound."
    statements = matcher.statements(text, "lung")
    assert all(isinstance(s, Statement) for s in statements)
    by_field = {s.field: s for s in statements}
    assert text[by_field["lung_sliding"].start:by_field["lung_sliding"].end] == "Lung sliding"
    assert text[by_field["lung_b_lines"].start:by_field["lung_b_lines"].end] == "B-lines"
    assert [by_field[f].sentence for f in ("lung_sliding", "lung_b_lines", "label")] == [0, 1, 2]
    with pytest.raises(dataclasses.FrozenInstanceError):
        statements[0].negated = True  # type: ignore[misc]


def test_organ_filter(matcher: FindingsMatcher) -> None:
    text = "Hypoechoic nodule with B-lines."
    fields = {s.field for s in matcher.statements(text)}
    assert {"birads_echo_pattern", "tirads_echogenicity", "lung_b_lines"} <= fields
    assert {s.field for s in matcher.statements(text, "thyroid")} == {"tirads_echogenicity", "lesion"}
    assert matcher.statements("", "lung") == []
    with pytest.raises(ValueError, match="organ"):
        matcher.findings("No B-lines.", "heart")


GOLDEN = [
    ("breast", """FINDINGS: At 10 o'clock there is an irregular, hypoechoic mass with spiculated margins,
not parallel to the skin, measuring 14 mm, with posterior acoustic shadowing and microcalcifications
within the mass. No other masses.
IMPRESSION: Highly suspicious for malignancy, BI-RADS 5.""",
     {"birads_shape": "irregular", "birads_echo_pattern": "hypoechoic", "birads_margin": "spiculated",
      "birads_orientation": "not_parallel", "birads_posterior": "shadowing",
      "birads_calcifications": "in_mass", "birads_category": "5"}),
    ("breast", "Oval, circumscribed, anechoic mass, parallel orientation, with posterior enhancement. "
               "No calcifications. BIRADS category 2, simple cyst.",
     {"birads_shape": "oval", "birads_margin": "circumscribed", "birads_echo_pattern": "anechoic",
      "birads_orientation": "parallel", "birads_posterior": "enhancement", "birads_calcifications": "none",
      "birads_category": "2"}),
    ("thyroid", """CLINICAL HISTORY: Rule out malignancy; family history of thyroid cancer.
FINDINGS: Right lobe: solid, markedly hypoechoic nodule, taller-than-wide, with lobulated margins and
punctate echogenic foci. No extrathyroidal extension is seen.
IMPRESSION: ACR TI-RADS TR5 (9 points).""",
     {"tirads_composition": "solid", "tirads_echogenicity": "very_hypoechoic",
      "tirads_shape": "taller_than_wide", "tirads_margin": "lobulated", "tirads_foci": "punctate",
      "tirads_category": "5"}),
    ("thyroid", "Spongiform isoechoic nodule, wider than tall, smooth margins, no echogenic foci. TI-RADS 2.",
     {"tirads_composition": "spongiform", "tirads_echogenicity": "isoechoic", "tirads_shape": "wider_than_tall",
      "tirads_margin": "smooth", "tirads_foci": "none", "tirads_category": "2"}),
    ("liver", """FINDINGS: The liver is enlarged with a coarse echotexture and a nodular surface, in keeping
with cirrhosis. There is a 3 cm heterogeneous mass in segment VIII, suspicious for hepatocellular
carcinoma. No steatosis. No ascites.""",
     {"liver_fibrosis": "F4", "liver_lesion": "hcc", "liver_steatosis": "S0"}),
    ("liver", "Diffusely increased echogenicity with blurring of the portal vein walls, moderate fatty "
              "infiltration. No focal liver lesion. No evidence of fibrosis.",
     {"liver_steatosis": "S2", "liver_lesion": "none", "liver_fibrosis": "F0"}),
    ("lung", "Lung sliding is absent. A-lines present. No B-lines. No pleural effusion. "
             "Smooth pleural line. No consolidation.",
     {"lung_sliding": "absent", "lung_a_lines": "present", "lung_b_lines": "absent",
      "lung_effusion": "absent", "lung_pleural_line": "smooth", "lung_consolidation": "absent"}),
    ("lung", "Coalescent B-lines bilaterally with a thickened, fragmented pleural line and small subpleural "
             "consolidations; A-lines are not seen. Moderate pleural effusion on the right.",
     {"lung_b_lines": "confluent", "lung_pleural_line": "fragmented", "lung_consolidation": "subpleural",
      "lung_a_lines": "absent", "lung_effusion": "present"}),
]


@pytest.mark.parametrize(("organ", "text", "expected"), GOLDEN)
def test_golden_reports(matcher: FindingsMatcher, organ: str, text: str, expected: dict) -> None:
    assert matcher.findings(text, organ) == expected


# Phantom codes that the generated text never states (so no recall is owed).
UNSTATED = {
    ("birads_calcifications", "none"),
    ("liver_fibrosis", "F0"),
    ("liver_fibrosis", "F1"),
    ("liver_fibrosis", "F2"),
    ("liver_fibrosis", "F3"),
    ("lung_consolidation", "absent"),
}
# Generic codes the text uses for a more specific record value ("mass" for an HCC).
GENERIC = {("liver_lesion", "mass"), ("lung_consolidation", "present")}


def _agrees(field: str, extracted: str | None, truth: str | None) -> bool:
    if extracted is None or truth is None:
        return False
    return extracted == truth or ((field, extracted) in GENERIC and truth != ABSENCE.get(field))


@pytest.fixture(scope="module")
def phantom_reports() -> list[tuple[str, str, dict, str]]:
    out = []
    for seed in range(200):
        for organ, labels in LABELS.items():
            for label in labels:
                rng = np.random.default_rng(seed)
                findings = sample_findings(organ, label, rng)
                out.append((organ, label, findings, make_report(organ, label, findings, rng).text))
    return out


def test_phantom_precision_recall(matcher: FindingsMatcher, phantom_reports: list) -> None:
    correct = judged = stated = recalled = 0
    wrong: list[tuple] = []
    for organ, _label, truth, text in phantom_reports:
        extracted = matcher.findings(text, organ)
        assert set(extracted) <= set(FINDINGS_BY_ORGAN[organ])
        for field in FINDINGS_BY_ORGAN[organ]:
            value, expected = extracted.get(field), truth.get(field)
            assert value is None or value in FINDINGS_VOCABULARY[field]
            ok = _agrees(field, value, expected)
            if value is not None and expected is not None:
                judged += 1
                correct += ok
                if not ok:
                    wrong.append((organ, field, expected, value))
            if expected is not None and (field, expected) not in UNSTATED:
                stated += 1
                recalled += ok
    precision, recall = correct / judged, recalled / stated
    print(f"phantom findings: precision {precision:.4f} ({judged} judged), recall {recall:.4f} ({stated} stated)")
    assert precision >= 0.99, wrong[:10]
    assert recall >= 0.99


def test_phantom_reports_are_consistent(matcher: FindingsMatcher, phantom_reports: list) -> None:
    for organ, label, truth, text in phantom_reports:
        reasons = matcher.contradictions(text, organ, label, truth)
        if organ == "liver" and label == "fibrosis" and truth.get("liver_fibrosis") == "F1":
            # The phantom writes "Normal ultrasound appearance of the liver" for F1 fibrosis.
            assert all("normal" in r for r in reasons)
            continue
        assert reasons == [], (organ, label, reasons)


def _other_value(field: str, value: str) -> str:
    swap = {"hypoechoic": "hyperechoic", "very_hypoechoic": "isoechoic", "taller_than_wide": "wider_than_tall",
            "wider_than_tall": "taller_than_wide", "not_parallel": "parallel", "parallel": "not_parallel",
            "absent": "present", "present": "absent", "few": "confluent", "multiple": "absent",
            "confluent": "absent", "none": "punctate" if field == "tirads_foci" else "none"}
    if field == "liver_lesion":
        return "none" if value != "none" else "hcc"
    if value in swap and swap[value] in FINDINGS_VOCABULARY[field] and swap[value] != value:
        return swap[value]
    vocab = FINDINGS_VOCABULARY[field]
    return vocab[0] if value != vocab[0] else vocab[-1]


def test_phantom_contradictions_found(matcher: FindingsMatcher, phantom_reports: list) -> None:
    checked = flagged = 0
    for organ, label, truth, text in phantom_reports[:800]:
        extracted = matcher.findings(text, organ)
        for field, value in extracted.items():
            if truth.get(field) != value or (field, value) in GENERIC:
                continue
            record = dict(truth, **{field: _other_value(field, value)})
            if any(r is None for r in record.values()):
                continue
            checked += 1
            reasons = matcher.contradictions(text, organ, label, record)
            flagged += any(field in r for r in reasons)
    print(f"altered records flagged: {flagged}/{checked}")
    assert checked > 1000
    assert flagged / checked >= 0.98


@pytest.mark.parametrize(
    ("text", "organ", "label", "findings"),
    [
        ("Irregular mass, highly suspicious for malignancy.", "breast", "benign", {}),
        ("Oval circumscribed mass. Malignant.", "breast", "benign", {}),
        ("No evidence of malignancy.", "breast", "malignant", {}),
        ("Solid hypoechoic nodule.", "thyroid", "malignant", {"tirads_echogenicity": "hyperechoic"}),
        ("No B-lines. A-lines present.", "lung", "covid", {"lung_b_lines": "multiple"}),
        ("No B-lines.", "lung", "viral_pneumonia", {"lung_b_lines": "confluent"}),
        ("No nodule is seen.", "thyroid", "malignant", {}),
        ("No mass.", "breast", "benign", {}),
        ("Normal liver.", "liver", "malignant", {}),
        ("A 12 mm hypoechoic mass.", "breast", "normal", {}),
        ("Consistent with bacterial pneumonia.", "lung", "covid", {}),
        ("Mild steatosis.", "liver", "normal", {"liver_steatosis": "S0"}),
        ("Haemangioma in segment VI.", "liver", "malignant", {"liver_lesion": "hcc"}),
        ("Calcifications within the mass.", "breast", "malignant", {"birads_calcifications": "none"}),
        ("The mass is not parallel.", "breast", "benign", {"birads_orientation": "parallel"}),
        ("Margins are not circumscribed.", "breast", "benign", {"birads_margin": "circumscribed"}),
    ],
)
def test_contradictions(
    matcher: FindingsMatcher, text: str, organ: str, label: str, findings: dict
) -> None:
    assert matcher.contradictions(text, organ, label, findings)


@pytest.mark.parametrize(
    ("text", "organ", "label", "findings"),
    [
        ("Oval, circumscribed, hypoechoic mass, parallel orientation. BI-RADS 3, probably benign.", "breast",
         "benign", {"birads_shape": "oval", "birads_echo_pattern": "hypoechoic", "birads_category": "3"}),
        ("CLINICAL HISTORY: family history of breast cancer.\nFINDINGS: No mass. BI-RADS 1.", "breast",
         "normal", {"birads_category": "1"}),
        ("Possible malignancy, biopsy recommended.", "breast", "benign", {}),
        ("No suspicious calcifications.", "breast", "benign", {"birads_calcifications": "none"}),
        ("Irregular pleural line and thickened pleura.", "lung", "covid", {"lung_pleural_line": "thickened"}),
        ("Viral pneumonia pattern.", "lung", "covid", {}),
        ("BI-RADS 4.", "breast", "benign", {"birads_category": "4a"}),
        ("Lobar consolidation, consistent with pneumonia.", "lung", "pneumonia",
         {"lung_consolidation": "lobar"}),
        ("Heterogeneous hypoechoic mass in segment V.", "liver", "malignant", {"liver_lesion": "hcc"}),
        ("No change in the hypoechoic nodule.", "thyroid", "benign", {"tirads_echogenicity": "hypoechoic"}),
        ("Mild hepatic steatosis. Small haemangioma.", "liver", "benign", {"liver_steatosis": "S1"}),
        ("Hypoechoic nodule. No other nodules.", "thyroid", "malignant", {}),
        ("Normal thyroid parenchyma; solid hypoechoic nodule.", "thyroid", "malignant", {}),
    ],
)
def test_consistent_texts(
    matcher: FindingsMatcher, text: str, organ: str, label: str, findings: dict
) -> None:
    assert matcher.contradictions(text, organ, label, findings) == []


def test_deterministic(matcher: FindingsMatcher, phantom_reports: list) -> None:
    other = FindingsMatcher()
    for organ, _label, _truth, text in phantom_reports[:50]:
        assert matcher.statements(text, organ) == other.statements(text, organ)
        assert matcher.statements(text) == other.statements(text)
