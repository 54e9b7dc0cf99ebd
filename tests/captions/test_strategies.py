"""Caption strategies pick the right candidate of a row, in order of preference."""

from __future__ import annotations

import pytest

from echocaptions.captions import strategies

REPORT = {"source": "report", "text": "Hypoechoic solid nodule. TI-RADS 4."}
TEMPLATE = {"source": "template", "text": "Ultrasound of a solid thyroid nodule."}
TEMPLATE_2 = {"source": "template", "text": "Thyroid ultrasound showing a solid nodule."}
LLM = {"source": "llm", "text": "A solid hypoechoic thyroid nodule on ultrasound."}


@pytest.mark.parametrize(
    ("captions", "strategy", "expected"),
    [
        ([REPORT, TEMPLATE, LLM], "report_template", ("report", [REPORT["text"]])),
        ([TEMPLATE, LLM], "report_template", ("template", [TEMPLATE["text"]])),
        ([TEMPLATE, LLM], "report_llm", ("llm", [LLM["text"]])),
        ([REPORT, TEMPLATE, LLM], "report_llm", ("report", [REPORT["text"]])),
        ([TEMPLATE], "report_llm", ("template", [TEMPLATE["text"]])),
        ([REPORT, TEMPLATE, LLM], "template_only", ("template", [TEMPLATE["text"]])),
        ([REPORT, TEMPLATE, LLM], "llm_only", ("llm", [LLM["text"]])),
        ([REPORT, TEMPLATE], "llm_only", ("template", [TEMPLATE["text"]])),
        ([TEMPLATE, TEMPLATE_2], "template_only", ("template", [TEMPLATE["text"]])),
        ([TEMPLATE, TEMPLATE_2], "template_multi", ("template", [TEMPLATE["text"], TEMPLATE_2["text"]])),
        ([TEMPLATE], "report_only", (None, [])),
        ([{"source": "report", "text": ""}, TEMPLATE], "report_template", ("template", [TEMPLATE["text"]])),
    ],
)
def test_candidates_follow_the_strategy_order(captions, strategy, expected) -> None:
    assert strategies.candidates({"captions": captions}, strategy) == expected


def test_unknown_strategy_names_the_known_ones() -> None:
    with pytest.raises(strategies.UnknownStrategy, match="report_template"):
        strategies.caption({"captions": [TEMPLATE]}, "reports_first")


def test_llm_strategies_apply_only_with_llm_captions() -> None:
    rows = [{"captions": [REPORT, TEMPLATE]}, {"captions": [TEMPLATE]}]
    assert strategies.available(rows) == {"report": 1, "template": 2}
    assert strategies.applicable(rows) == ["report_template", "template_only"]
    rows.append({"captions": [TEMPLATE, LLM]})
    assert strategies.applicable(rows) == list(strategies.PUBLISHED)
