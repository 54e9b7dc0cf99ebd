"""Report tier: sections, sentence filters, the token budget, and robustness."""

from __future__ import annotations

import re

import numpy as np
import pytest

from echocaptions.captions.policy import CaptionPolicy
from echocaptions.captions.reports.caption import (
    BOILERPLATE,
    BOILERPLATE_HINTS,
    DEFAULT_SECTIONS,
    HEADER_KEY,
    ReportCaptioner,
    ReportConfig,
    _normalise,
)
from echocaptions.schema import SourceItem
from echocaptions.synth.reports import ddti_reporteco, make_report, sample_findings


@pytest.fixture(scope="module")
def captioner() -> ReportCaptioner:
    return ReportCaptioner()


GOLDEN: list[tuple[str, str, str]] = [
    (
        "breast",
        """[HOSPITAL] - DEPARTMENT OF RADIOLOGY
Patient: [NAME]    MRN: [ID]
CLINICAL HISTORY: 52-year-old with a palpable lump in the left breast.
TECHNIQUE: Targeted ultrasound of the left breast with a linear transducer.
COMPARISON: Mammogram dated [DATE].
FINDINGS: At the 2 o'clock position, 3cm from the nipple, there is an irregular hypoechoic mass w/ \
spiculated margins measuring 1.8x1.2x1.5cm. Posterior acoustic shadowing is present. The right \
kidney is unremarkable. No axillary lymphadenopathy.
IMPRESSION: Suspicious mass in the left breast at 2 o'clock, BI-RADS 5. Ultrasound-guided core bx is recommended.
Findings discussed with [NAME] by telephone.
Electronically signed by: [NAME], MD on [DATE]""",
        "At the 2 o'clock position, 3 cm from the nipple, there is an irregular hypoechoic mass with "
        "spiculated margins measuring 1.8 x 1.2 x 1.5 cm. Suspicious mass in the left breast at "
        "2 o'clock, BI-RADS 5. Ultrasound-guided core biopsy is recommended.",
    ),
    (
        "thyroid",
        """Clinical History: Palpable neck nodule.
Findings:
The thyroid gland is normal in size. In the R lobe there is a solid, hypo-echoic nodule with \
microcalcifications measuring 12mm. Gallbladder is partially visualised and normal. Two reactive \
LNs at level III.
Impression:
1. Right thyroid nodule, TI-RADS 5
2. FNA recommended
Please correlate clinically.""",
        "The thyroid gland is normal in size. In the right lobe there is a solid, hypoechoic nodule "
        "with microcalcifications measuring 12 mm. Two reactive lymph nodes at level III. Right "
        "thyroid nodule, TI-RADS 5. FNA recommended.",
    ),
    (
        "liver",
        """EXAM: US ABDOMEN LIMITED
INDICATION: Abnormal LFTs.
FINDINGS: The liver measures 17.2 cm with diffusely increased echogenicity. Approx. 2 cm simple \
cyst in segment VI. The spleen is normal in size. Both kidneys are normal. Portal vein patent with \
hepatopetal flow.
CONCLUSION: Moderate hepatic steatosis. Simple hepatic cyst.
Dictated by: [NAME]""",
        "The liver measures 17.2 cm with diffusely increased echogenicity. Approximately 2 cm simple "
        "cyst in segment VI. Portal vein patent with hepatopetal flow. Moderate hepatic steatosis. "
        "Simple hepatic cyst.",
    ),
    (
        "lung",
        "Point-of-care lung ultrasound, right hemithorax. Multiple B-lines in the right lower zone. "
        "The pleural line is irregular. Small subpleural consolidations. Impression: Interstitial "
        "syndrome, compatible with viral pneumonia. Report verified by [NAME].",
        "Point-of-care lung ultrasound, right hemithorax. Multiple B-lines in the right lower zone. "
        "The pleural line is irregular. Small subpleural consolidations. Interstitial syndrome, "
        "compatible with viral pneumonia.",
    ),
    (
        "thyroid",
        """FINDINGS: The right lobe measures 48 x 16 x 15 mm and the left lobe 46 x 15 x 14 mm; \
the isthmus is 3 mm thick. In the left lobe there is a solid, markedly hypoechoic nodule, \
taller-than-wide, with irregular margins and punctate echogenic foci, measuring 14 x 11 x 16 mm. \
Intranodular flow on Doppler. No cervical lymphadenopathy.
IMPRESSION: Left thyroid nodule with suspicious features, TI-RADS 5. Fine-needle aspiration is recommended.""",
        "In the left lobe there is a solid, markedly hypoechoic nodule, taller-than-wide, with "
        "irregular margins and punctate echogenic foci, measuring 14 x 11 x 16 mm. Left thyroid "
        "nodule with suspicious features, TI-RADS 5. Fine-needle aspiration is recommended.",
    ),
    (
        "breast",
        "Right breast ultrasound. An oval, circumscribed, anechoic mass at 9 o'clock measures 8 mm, "
        "consistent with a simple cyst. The liver is not imaged. BI-RADS 2: benign.",
        "Right breast ultrasound. An oval, circumscribed, anechoic mass at 9 o'clock measures 8 mm, "
        "consistent with a simple cyst. BI-RADS 2: benign.",
    ),
]


@pytest.mark.parametrize(("organ", "report", "expected"), GOLDEN)
def test_golden_reports(captioner: ReportCaptioner, organ: str, report: str, expected: str) -> None:
    result = captioner.caption(report, organ)
    assert result.reason is None
    assert result.caption is not None
    assert result.caption.source == "report"
    assert result.caption.text == expected
    assert result.language == "en"
    assert captioner.counter.count(result.caption.text) <= 77
    note = result.caption.provenance.note or ""
    assert f"kept {len(result.kept)} of" in note
    assert "/77" in note


def test_dropped_sentences_say_why(captioner: ReportCaptioner) -> None:
    result = captioner.caption(GOLDEN[0][1], "breast")
    reasons = [d.split(":", 1)[0] for d in result.dropped]
    assert {"header", "history", "technique", "comparison", "boilerplate", "other organ"} <= set(reasons)
    assert "other organ: kidney: The right kidney is unremarkable." in result.dropped
    assert any(d.startswith("over budget") for d in result.dropped)
    liver = captioner.caption(GOLDEN[2][1], "liver")
    assert "other organ: spleen: The spleen is normal in size." in liver.dropped


def test_other_organ_kept_when_it_names_the_organ_too(captioner: ReportCaptioner) -> None:
    result = captioner.caption(
        "FINDINGS: The liver is brighter than the renal cortex. The kidney is normal.", "liver"
    )
    assert result.kept == ["The liver is brighter than the renal cortex."]


@pytest.mark.parametrize(
    "report",
    [
        "FINDINGS: Solid nodule in the left lobe.\nIMPRESSION: Benign thyroid nodule.",
        "Findings: Solid nodule in the left lobe.\nImpression: Benign thyroid nodule.",
        "FINDINGS\nSolid nodule in the left lobe.\n\nIMPRESSION\nBenign thyroid nodule.",
        "  findings and history unknown\nFindings: Solid nodule in the left lobe. Impression: Benign thyroid nodule.",
        "Clinical history: Neck lump.\nFindings: Solid nodule in the left lobe.\nConclusion: Benign thyroid nodule.",
    ],
)
def test_section_heading_variants(captioner: ReportCaptioner, report: str) -> None:
    result = captioner.caption(report, "thyroid")
    assert result.kept == ["Solid nodule in the left lobe.", "Benign thyroid nodule."]
    assert "FINDINGS" in result.sections


def test_no_headings_is_one_other_section(captioner: ReportCaptioner) -> None:
    result = captioner.caption("Hypoechoic nodule in the right lobe. TI-RADS 4.", "thyroid")
    assert list(result.sections) == [HEADER_KEY]
    assert result.caption is not None
    assert result.caption.text == "Hypoechoic nodule in the right lobe. TI-RADS 4."


def test_history_only_report_has_a_reason(captioner: ReportCaptioner) -> None:
    result = captioner.caption("CLINICAL HISTORY: Neck lump.\nTECHNIQUE: Linear probe.", "thyroid")
    assert result.caption is None
    assert result.reason == "no findings or impression section"


def test_boilerplate_only_report_has_a_reason(captioner: ReportCaptioner) -> None:
    result = captioner.caption("IMPRESSION: Please correlate clinically. [NAME] [DATE].", "thyroid")
    assert result.caption is None
    assert "no recognisable content" in (result.reason or "")


def test_custom_sections_are_configurable() -> None:
    sections = {**DEFAULT_SECTIONS, "OPINION": "history", "SONO": "impression"}
    captioner = ReportCaptioner(ReportConfig(sections=sections))
    result = captioner.caption("OPINION: Probably fine.\nSONO: Simple cyst in the left breast.", "breast")
    assert result.kept == ["Simple cyst in the left breast."]
    with pytest.raises(ValueError, match="role"):
        ReportCaptioner(ReportConfig(sections={"FINDINGS": "body"}))


def test_decimals_and_abbreviations_do_not_split_sentences(captioner: ReportCaptioner) -> None:
    result = captioner.caption(
        "FINDINGS: Nodule approx. 1.2 cm, e.g. in the left lobe, vs. a cyst. Dr. Doe agrees it is solid.",
        "thyroid",
    )
    assert result.kept[0] == "Nodule approximately 1.2 cm, e.g. in the left lobe, vs. a cyst."


def test_normalise_measurements_and_abbreviations() -> None:
    assert _normalise("1.2x0.8cm") == "1.2 x 0.8 cm"
    assert _normalise("12mm nodule w/o flow") == "12 mm nodule without flow"
    assert _normalise("Hyperechogenic L lobe LN, c/w reactive; bx") == (
        "Hyperechoic left lobe lymph node, consistent with reactive; biopsy"
    )
    assert _normalise("portal vein, result, multiple") == "portal vein, result, multiple"


def _budget_report(pad: int) -> str:
    return (
        "FINDINGS: There is a solid hypoechoic nodule in the left lobe with irregular margins. "
        f"Trace fluid {'1' * pad} noted.\n"
        "IMPRESSION: Suspicious left thyroid nodule, TI-RADS 5."
    )


def test_token_budget_boundary(captioner: ReportCaptioner) -> None:
    counter = captioner.counter
    pad = next(
        k for k in range(1, 60)
        if counter.count(
            "There is a solid hypoechoic nodule in the left lobe with irregular margins. "
            f"Trace fluid {'1' * k} noted. Suspicious left thyroid nodule, TI-RADS 5."
        ) == 77
    )
    fits = captioner.caption(_budget_report(pad), "thyroid")
    assert fits.caption is not None and len(fits.kept) == 3
    assert counter.count(fits.caption.text) == 77
    assert "tokens 77/77" in (fits.caption.provenance.note or "")
    over = captioner.caption(_budget_report(pad + 1), "thyroid")
    assert over.kept == [
        "There is a solid hypoechoic nodule in the left lobe with irregular margins.",
        "Suspicious left thyroid nodule, TI-RADS 5.",
    ]
    assert over.dropped[-1].startswith("over budget")
    assert f"Trace fluid {'1' * (pad + 1)} noted." in over.dropped[-1]


def test_sentence_longer_than_budget_is_dropped_and_reason_given() -> None:
    captioner = ReportCaptioner(ReportConfig(budget=12))
    result = captioner.caption(
        "IMPRESSION: Solid markedly hypoechoic nodule with irregular margins and microcalcifications.",
        "thyroid",
    )
    assert result.caption is None
    assert result.reason == "no sentence fits the token budget"
    assert result.dropped[0].startswith("over budget")


@pytest.mark.parametrize("empty", [None, "", "   \n\t ", b"", b"  \n"])
def test_empty_reports(captioner: ReportCaptioner, empty: str | bytes | None) -> None:
    result = captioner.caption(empty, "thyroid")
    assert result.caption is None
    assert result.reason == "empty report"
    assert result.language == "und"


def test_non_utf8_bytes_are_decoded_and_noted(captioner: ReportCaptioner) -> None:
    raw = "FINDINGS: Nodule measuring 12 mm \u2013 solid. IMPRESSION: Benign nodule in the left lobe.".encode(
        "cp1252"
    ) + b"\x81"
    result = captioner.caption(raw, "thyroid")
    assert result.caption is not None
    assert "decoded as" in (result.caption.provenance.note or "")
    utf8 = captioner.caption(b"IMPRESSION: Benign nodule in the left lobe.", "thyroid")
    assert utf8.caption is not None and "decoded" not in (utf8.caption.provenance.note or "")


def test_absurdly_long_report_is_cut_and_noted(captioner: ReportCaptioner) -> None:
    body = "Small cyst in the left lobe measuring 3 mm. " * 25_000
    result = captioner.caption(f"FINDINGS: {body}\nIMPRESSION: Benign.", "thyroid")
    assert len(body) > 1_000_000
    assert result.caption is not None
    assert "cut from" in (result.caption.provenance.note or "")
    assert result.kept == ["Small cyst in the left lobe measuring 3 mm."]
    garbage = captioner.caption("x" * 1_000_000, "thyroid")
    assert garbage.caption is None or captioner.counter.count(garbage.caption.text) <= 77


def test_spanish_report_is_excluded_by_language(captioner: ReportCaptioner) -> None:
    rng = np.random.default_rng(3)
    descriptors = {"composition": "solid", "echogenicity": "hypoechogenicity", "margins": "ill defined",
                   "calcifications": "microcalcifications", "tirads": "4b"}
    spanish = next(
        t for t in (ddti_reporteco(descriptors, rng) for _ in range(50)) if t.startswith("Tiroides")
    )
    result = captioner.caption(spanish, "thyroid")
    assert result.language == "es"
    assert result.caption is None
    assert result.reason == "language 'es' not in [en]"
    allowed = ReportCaptioner(ReportConfig(languages=("en", "es"))).caption(spanish, "thyroid")
    assert allowed.language == "es" and allowed.caption is not None


def test_phantom_reports_are_captioned_deterministically() -> None:
    rng = np.random.default_rng(5)
    items = []
    for i in range(40):
        organ = ("breast", "thyroid", "liver", "lung")[i % 4]
        label = {"breast": "malignant", "thyroid": "benign", "liver": "steatosis", "lung": "covid"}[organ]
        items.append((make_report(organ, label, sample_findings(organ, label, rng), rng).text, organ))
    first = ReportCaptioner().caption_many(items)
    second = ReportCaptioner().caption_many(items)
    one_by_one = [ReportCaptioner().caption(t, o) for t, o in items[:8]]
    assert [r.caption.text for r in first if r.caption] == [r.caption.text for r in second if r.caption]
    assert [r.caption and r.caption.text for r in first[:8]] == [r.caption and r.caption.text for r in one_by_one]
    assert all(r.caption is not None and r.language == "en" for r in first)
    assert all("Electronically" not in r.caption.text for r in first if r.caption)
    assert all("CLINICAL HISTORY" not in r.caption.text for r in first if r.caption)


def test_policy_uses_the_report_captioner() -> None:
    policy = CaptionPolicy(["report", "template"])
    captioner = ReportCaptioner()
    item = SourceItem(
        source="demo", dataset="demo", path="a.png", source_path="a.png", organ="thyroid", label="benign",
        report="FINDINGS: Spongiform nodule in the left lobe.\nIMPRESSION: Benign thyroid nodule.",
    )
    report = captioner.caption(item.report, item.organ)
    text, source, captions, _ = policy.choose("id1", item, report=report)
    assert source == "report"
    assert text == "Spongiform nodule in the left lobe. Benign thyroid nodule."
    assert {c.source for c in captions} == {"report", "template"}
    spanish = SourceItem(
        source="demo", dataset="demo", path="b.png", source_path="b.png", organ="thyroid", label="benign",
        report="Nódulo sólido en el lóbulo derecho de la tiroides, sin calcificaciones y con bordes bien definidos.",
    )
    report = captioner.caption(spanish.report, spanish.organ)
    _, source, _, meta = policy.choose("id2", spanish, report=report)
    assert source == "template"
    assert "language 'es' not in [en]" in meta["fallback"]
    _, source, _, meta = policy.choose("id3", spanish)
    assert source == "template" and meta["fallback"] == "report: no report for this image"


@pytest.mark.parametrize(
    "sentence",
    [
        "Findings were discussed with Dr. Smith.", "Discussed with the referring physician.",
        "Electronically signed.", "Dictated by J. Doe.", "Report finalised today.",
        "Please correlate clinically.", "Clinical correlation is advised.", "Thank you for this referral.",
        "End of report.", "I have personally reviewed the images.", "Radiologist: J. Doe.", "MRN # 123.",
        "Fax: 555.",
    ],
)
def test_every_boilerplate_pattern_has_a_hint(sentence: str) -> None:
    """The keyword pre-check never hides a boilerplate sentence from the full patterns."""
    hits = [p for p in BOILERPLATE if re.search(p, sentence, re.IGNORECASE)]
    assert hits
    assert any(h in sentence.lower() for h in BOILERPLATE_HINTS)
    assert ReportCaptioner()._why_drop(sentence, "liver") == "boilerplate"
