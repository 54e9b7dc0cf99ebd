"""Chinese reports: told apart as zh, and de-identified without touching the Chinese around the PHI."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from echocaptions.captions.reports.caption import ReportCaptioner
from echocaptions.captions.reports.deid import Deidentifier, _mostly_cjk
from echocaptions.captions.reports.language import detect_language
from echocaptions.synth.reports import SyntheticReport, make_report_zh, sample_findings

ORGANS = ("breast", "thyroid", "liver")
LABELS = ("normal", "benign", "malignant")


def phantom_reports(n_seeds: int = 20) -> list[tuple[SyntheticReport, bool]]:
    """Phantom Chinese reports of every organ and label, plain and word-segmented."""
    out = []
    for organ in ORGANS:
        for label in LABELS:
            for seed in range(n_seeds):
                rng = np.random.default_rng([seed, ORGANS.index(organ), LABELS.index(label)])
                segmented = seed % 2 == 1
                out.append((make_report_zh(organ, label, sample_findings(organ, label, rng), rng, segmented),
                            segmented))
    return out


REPORTS = phantom_reports()


@pytest.fixture(scope="module")
def deid() -> Deidentifier:
    return Deidentifier(use_ner=False)


def expected(report: SyntheticReport) -> str:
    """The report with exactly its planted spans replaced by their placeholders."""
    text = report.text
    for start, end, kind in sorted(report.spans, reverse=True):
        text = text[:start] + f"[{kind}]" + text[end:]
    return text


def test_phantom_reports_plant_every_type_in_both_forms() -> None:
    kinds = Counter(kind for report, _ in REPORTS for _, _, kind in report.spans)
    assert set(kinds) == {"HOSPITAL", "NAME", "AGE", "ID", "DATE", "PHONE"}
    segmented = [r.text for r, s in REPORTS if s]
    plain = [r.text for r, s in REPORTS if not s]
    assert all("超声 所见 ：" in t for t in segmented) and all("超声所见：" in t for t in plain)
    for report, _ in REPORTS:
        assert [report.text[s:e] for s, e, _ in report.spans] == report.phi
        assert "  " not in report.text
    dates = [r.text[s:e] for r, _ in REPORTS for s, e, k in r.spans if k == "DATE"]
    for form in ("年", "-", "/", ".", "〇"):
        assert any(form in d for d in dates), form


@pytest.mark.parametrize("segmented", [False, True], ids=["plain", "segmented"])
def test_phantom_reports_are_zh(segmented: bool) -> None:
    for report, seg in REPORTS:
        if seg == segmented:
            language, confidence = detect_language(report.text)
            assert language == "zh" and confidence >= 0.5, report.text


def test_language_of_other_scripts_and_mixed_text() -> None:
    assert detect_language("甲状腺 右叶 见 一 低回声 结节 ， TI-RADS 4a 类 。")[0] == "zh"
    assert detect_language("Patient 张伟: the thyroid gland is normal in size with no nodule.")[0] == "en"
    assert detect_language("甲状腺の右葉に低エコー結節を認める。")[0] == "ja"
    assert detect_language("갑상선 우엽에 저에코 결절이 있습니다")[0] == "ko"
    assert detect_language("甲状腺")[0] == "und"
    assert _mostly_cjk("超声所见：甲状腺右叶结节。") and not _mostly_cjk("Dr. 李娜 reviewed the thyroid study.")


def test_all_planted_phi_removed_and_the_chinese_kept_byte_for_byte(deid: Deidentifier) -> None:
    for report, _ in REPORTS:
        clean = deid.scrub(report.text)
        assert clean.text == expected(report), report.text
        assert clean.counts == dict(Counter(kind for _, _, kind in report.spans))
        assert not any(value in clean.text for value in report.phi)


def test_scrub_many_matches_scrub_on_chinese(deid: Deidentifier) -> None:
    texts = [r.text for r, _ in REPORTS[:30]]
    assert [s.text for s in deid.scrub_many(texts)] == [deid.scrub(t).text for t in texts]


@pytest.mark.parametrize(
    ("text", "scrubbed"),
    [
        ("检查日期：2023年5月12日", "检查日期：[DATE]"),
        ("于2023-05-12行超声检查", "于[DATE]行超声检查"),
        ("复查日期2023/5/12，", "复查日期[DATE]，"),
        ("报告日期：2023.05.12 14:30", "报告日期：[DATE]"),
        ("检查日期：二〇二三年五月十二日", "检查日期：[DATE]"),
        ("检查 日期 ： 2023 年 5 月 12 日", "检查 日期 ： [DATE]"),
        ("检查 日期 ： 2023 - 05 - 12", "检查 日期 ： [DATE]"),
        ("5月12日复查", "[DATE]复查"),
        ("姓名：张伟性别：女", "姓名：[NAME]性别：女"),
        ("患者欧阳娜娜，女，45岁", "患者[NAME]，女，45岁"),
        ("报告医生：李娜 审核医生：王建国", "报告医生：[NAME] 审核医生：[NAME]"),
        ("检查医生 ： 刘洋", "检查医生 ： [NAME]"),
        ("已与临床李娜医生沟通", "已与临床[NAME]医生沟通"),
        ("由张医生复查，王主任审核", "由[NAME]医生复查，[NAME]主任审核"),
        ("姓名：张伟。张伟既往体健。", "姓名：[NAME]。[NAME]既往体健。"),
        ("复旦大学附属肿瘤医院超声科", "[HOSPITAL]超声科"),
        ("患者 于 北京 协和 医院 就诊", "患者 于 [HOSPITAL] 就诊"),
        ("住院号：ZY2023001234", "住院号：[ID]"),
        ("门诊号12345678", "门诊号[ID]"),
        ("检查号 ： US2023051200", "检查号 ： [ID]"),
        ("ID：00123456", "ID：[ID]"),
        ("身份证号：33010219900101123X", "身份证号：[ID]"),
        ("联系电话：13812345678", "联系电话：[PHONE]"),
        ("手机138-1234-5678", "手机[PHONE]"),
        ("电话：0571-87654321", "电话：[PHONE]"),
        ("电话：(021)87654321", "电话：[PHONE]"),
        ("年龄：92岁", "年龄：[AGE]岁"),
        ("住址：浙江省杭州市西湖区文三路100号 电话：13900001111", "住址：[ADDRESS] 电话：[PHONE]"),
    ],
)
def test_chinese_phi_forms(deid: Deidentifier, text: str, scrubbed: str) -> None:
    assert deid.scrub(text).text == scrubbed


@pytest.mark.parametrize(
    "text",
    [
        "甲状腺右叶可见一低回声结节，大小约1.2×0.8cm，TI-RADS 4a类，建议细针穿刺活检。",
        "左侧 乳腺 可见 一 低回声 结节 ， 大小 约 1.2 x 0.8 cm ， BI-RADS 3 类 。",
        "大小约12×8mm，纵横比大于1。BI-RADS 4b类。TI-RADS 5类。",
        "患者左侧乳腺可见包块。患者 左侧 乳腺 包块 ， 医生 建议 随访 6 个 月 。",
        "2019年行甲状腺手术，术后3个月复查。年龄：45岁。",
        "于我院就诊，曾在当地医院及上级医院复查，外院超声提示结节。",
        "CDFI：结节内可见血流信号。申请医生：",
        "肝Ⅳ段可见一无回声区，大小约2.1 x 1.5 cm，门静脉主干内径正常。",
    ],
)
def test_clinical_chinese_survives(deid: Deidentifier, text: str) -> None:
    clean = deid.scrub(text)
    assert clean.text == text and clean.counts == {}


def test_chinese_report_is_kept_out_of_an_english_report_tier(deid: Deidentifier) -> None:
    report, _ = REPORTS[1]
    result = ReportCaptioner().caption(deid.scrub(report.text).text, "breast")
    assert result.caption is None and result.language == "zh"
    assert result.reason == "language 'zh' not in [en]"
