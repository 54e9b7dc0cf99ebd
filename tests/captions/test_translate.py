"""Non-English reports translated to English through the LLM tier, de-identified before and after."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from echocaptions.captions.llm.client import LLMCaptioner, LLMConfig
from echocaptions.captions.llm.translate import ReportTranslator, join_segmented
from echocaptions.captions.report_stage import ReportStage
from echocaptions.recipe import RecipeError, load_recipe
from echocaptions.synth import make_phantom
from echocaptions.synth.reports import make_report_zh, sample_findings
from tests.captions.openai_stub import default_reply, serve_openai
from tests.pipeline.helpers import run

# A phrase table from the Spanish of the phantom's DDTI reports to English, longest first.
ES_EN = {
    "Tiroides de tamaño y ecogenicidad normales": "Thyroid gland of normal size and echogenicity",
    "predominantemente sólido": "predominantly solid",
    "predominantemente quístico": "predominantly cystic",
    "marcadamente hipoecoico": "markedly hypoechoic",
    "bordes lisos bien definidos": "well defined smooth margins",
    "bordes bien definidos": "well defined margins",
    "bordes mal definidos": "ill defined margins",
    "bordes microlobulados": "microlobulated margins",
    "bordes macrolobulados": "macrolobulated margins",
    "bordes espiculados": "spiculated margins",
    "sin calcificaciones": "no calcifications",
    "con microcalcificaciones": "microcalcifications",
    "con microcalcificación": "microcalcification",
    "con macrocalcificaciones": "macrocalcifications",
    "con macrocalcificación": "macrocalcification",
    "en el lóbulo derecho de": "in the right lobe, measuring",
    "en el lóbulo izquierdo de": "in the left lobe, measuring",
    "espongiforme": "spongiform",
    "sólido": "solid",
    "denso": "dense",
    "hiperecoico": "hyperechoic",
    "isoecoico": "isoechoic",
    "hipoecoico": "hypoechoic",
    "Nódulo": "Nodule",
    "Paciente": "Patient",
}


# A phrase table from the Chinese of the phantom's report corpus to English, applied longest first.
ZH_EN = {
    "超声检查报告单": "Ultrasound report", "超声所见": "FINDINGS", "超声提示": "IMPRESSION", "超声": "ultrasound",
    "姓名": "Name", "性别": "Sex", "女": "female", "男": "male", "年龄": "Age", "岁": "years",
    "门诊号": "Outpatient number", "住院号": "Inpatient number", "检查号": "Exam number", "检查日期": "Exam date",
    "联系电话": "Phone", "检查部位": "Body part", "报告医生": "Reporting physician", "审核医生": "Reviewing physician",
    "报告日期": "Report date", "已与临床": "Discussed with the clinician", "医生沟通": "",
    "双侧": "in both", "左侧": "left", "右侧": "right", "左叶": "left lobe", "右叶": "right lobe",
    "乳腺": "breasts", "甲状腺": "the thyroid", "肝脏": "the liver", "肝内": "intrahepatic", "肝": "liver",
    "腺体结构清晰": "the glandular structure is clear", "未见明显": "there is no obvious",
    "未见": "there is no", "明显": "obvious",
    "占位性病变": "space-occupying lesion", "占位": "mass", "腋窝": "axillary", "肿大淋巴结": "enlarged lymph nodes",
    "异常": "abnormality of the organ", "点钟方向": "o'clock position", "可见一": "there is a", "可见": "there is",
    "极低回声": "markedly hypoechoic", "低回声": "hypoechoic", "无回声区": "anechoic area", "无回声": "anechoic",
    "等回声": "isoechoic", "高回声": "hyperechoic", "不均匀回声": "heterogeneous", "强回声点": "echogenic foci",
    "结节内": "within the nodule", "结节周边": "around the nodule", "结节": "nodule", "团块": "mass",
    "大小约": "which measures about", "形态": "with an", "椭圆形": "oval", "圆形": "round", "不规则": "irregular",
    "边界清晰": "well-defined margins", "边界不清": "indistinct margins", "边界模糊": "ill-defined margins",
    "边界成角": "angular margins", "边界呈微分叶状": "microlobulated margins", "边界呈毛刺状": "spiculated margins",
    "边界呈分叶状": "lobulated margins", "边界不规则": "irregular margins",
    "非平行生长": "non-parallel orientation", "平行生长": "parallel orientation",
    "后方回声增强": "posterior acoustic enhancement", "后方回声衰减": "posterior acoustic shadowing",
    "后方回声混合性改变": "combined posterior features", "后方回声无明显变化": "no posterior features",
    "内部可见血流信号": "internal vascularity", "未见明显血流信号": "no vascularity", "内部": "internal",
    "血流信号": "flow", "血流通畅": "flow is patent", "实性": "solid", "囊实性": "mixed cystic and solid",
    "囊性": "cystic", "海绵状": "spongiform", "建议": "recommend", "细针穿刺活检": "fine-needle aspiration",
    "穿刺活检": "biopsy", "定期复查": "routine follow-up", "进一步增强CT检查": "further contrast-enhanced CT",
    "大小形态正常": "is normal in size and shape",
    "包膜光整": "with a smooth capsule", "包膜光滑": "with a smooth capsule",
    "实质回声均匀": "and the parenchyma is homogeneous", "实质回声增强": "increased parenchymal echogenicity",
    "实质回声增粗不均匀": "coarse heterogeneous parenchyma", "颈部": "neck",
    "纵横比大于1": "taller-than-wide", "纵横比小于1": "wider-than-tall", "内未见强回声点": "no echogenic foci",
    "内可见微钙化": "punctate echogenic foci (microcalcifications)", "内可见粗大钙化": "coarse macrocalcifications",
    "可见周边环状钙化": "peripheral rim calcification", "可见彗星尾征": "comet-tail artifacts",
    "段": "segment", "门静脉主干内径正常": "main portal vein of normal calibre",
    "脂肪肝": "fatty liver (steatosis)", "轻度": "mild", "中度": "moderate", "重度": "severe", "囊肿": "cyst",
    "血管瘤": "haemangioma", "正常": "normal", "类": "", "一": "a",
    "：": ": ", "，": ", ", "。": ". ", "（": " (", "）": ") ",
}
_CJK = "\u3000-\u303f\u4e00-\u9fff\uff00-\uffef"
_CJK_SPACES = re.compile(f"[ \t]+(?=[{_CJK}])|(?<=[{_CJK}])[ \t]+")


def _translate(text: str) -> str:
    for es, en in sorted(ES_EN.items(), key=lambda kv: -len(kv[0])):
        text = text.replace(es, en)
    if not re.search(f"[{_CJK}]", text):
        return text
    text = _CJK_SPACES.sub("", text)
    for zh, en in sorted(ZH_EN.items(), key=lambda kv: -len(kv[0])):
        text = text.replace(zh, f" {en} " if en and en[0].isalpha() else en)
    return "\n".join(re.sub(r" +([,.):])", r"\1", re.sub(r"[ \t]+", " ", line)).strip() for line in text.split("\n"))


def translating_reply(body: dict) -> str:
    system = next((m["content"] for m in body["messages"] if m["role"] == "system"), "")
    if not system.startswith("You translate"):
        return default_reply(body)
    user = next(m["content"] for m in body["messages"] if m["role"] == "user")
    return _translate(user.split(":\n", 1)[1])


def _translator(base_url: str, tmp_path: Path) -> ReportTranslator:
    config = LLMConfig(base_url=base_url, model="stub-model", backoff_base=0.01)
    return ReportTranslator(LLMCaptioner(config, cache_path=tmp_path / "llm.sqlite"))


SPANISH = (
    "Paciente Juan Pérez García, 12/03/2021. Tiroides de tamaño y ecogenicidad normales. "
    "Nódulo sólido hipoecoico en el lóbulo derecho de 14 x 9 mm, bordes espiculados, "
    "con microcalcificaciones. TI-RADS 5."
)


def test_spanish_report_is_translated_after_deidentification(tmp_path: Path) -> None:
    with serve_openai(reply=translating_reply) as stub:
        stage = ReportStage(translator=_translator(stub.base_url, tmp_path))
        [outcome] = stage.process([(SPANISH, "thyroid")])
        sent = [m["content"] for r in stub.requests for m in r["messages"] if m["role"] == "user"]
    assert len(sent) == 1 and "Spanish" in sent[0]
    assert "Juan" not in sent[0] and "Pérez" not in sent[0] and "12/03/2021" not in sent[0]
    assert "[DATE]" in sent[0]
    result = outcome.result
    assert result.language == "es" and result.caption is not None
    caption = result.caption
    assert "spiculated" in caption.text and "hypoechoic" in caption.text
    assert caption.provenance.note.startswith("translated from 'es' by stub-model (translate@1)")
    assert outcome.findings.get("tirads_margin") and outcome.findings.get("tirads_echogenicity")
    assert "Juan" not in (outcome.text or "") and stage.translated == {"es": 1}


def test_without_a_translator_spanish_stays_out_of_the_report_tier() -> None:
    [outcome] = ReportStage().process([(SPANISH, "thyroid")])
    assert outcome.result.caption is None and outcome.result.reason == "language 'es' not in [en]"


@pytest.mark.parametrize(
    ("knobs", "reason"),
    [
        ({"reply": lambda body: ""}, "translation came back empty"),
        ({"reply": translating_reply, "finish_reason": "length"}, "translation cut off at max_tokens=512"),
        ({"reply": translating_reply, "fail_first": 99, "fail_status": 400}, "translation request failed: HTTP 400"),
    ],
)
def test_failed_translation_keeps_the_language_reason_and_says_why(tmp_path: Path, knobs, reason) -> None:
    with serve_openai(**knobs) as stub:
        [outcome] = ReportStage(translator=_translator(stub.base_url, tmp_path)).process([(SPANISH, "thyroid")])
    assert outcome.result.caption is None
    assert outcome.result.reason.startswith("language 'es' not in [en]; ") and reason in outcome.result.reason


def test_translate_needs_an_llm_block(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text("name: x\nsources:\n  - {name: a, layout: ddti, path: p}\nreports: {translate: true}\n")
    with pytest.raises(RecipeError, match="reports.translate is true but the recipe has no llm block"):
        load_recipe(path)


def _rows(out: Path) -> list[dict]:
    return [r for p in sorted((out / "data").glob("*.parquet")) for r in pq.read_table(p).drop(["image"]).to_pylist()]


def test_build_translates_ddti_spanish_reports_and_a_rerun_sends_nothing(phantom_root: Path, tmp_path: Path) -> None:
    overrides = ["reports.translate=true", "llm.model=stub-model"]
    with serve_openai(reply=translating_reply) as stub:
        result = run("thyroid", phantom_root, tmp_path / "out", f"llm.base_url={stub.base_url}", *overrides)
        sent = len(stub.requests)
        rows = _rows(result.out)
        spanish = [r for r in rows if r["report_language"] == "es"]
        assert spanish and sent == result.stats["reports"]["translated"]["es"] > 0
        for r in spanish:
            assert r["caption_source"] == "report", r["caption_meta"]
            assert re.search(r"nodule", r["caption"], re.I) and "ó" not in r["caption"]
            assert r["caption_meta"]["note"].startswith("translated from 'es' by stub-model (translate@1)")
        assert {r["caption_source"] for r in rows} == {"report", "template"}
        run("thyroid", phantom_root, tmp_path / "out", f"llm.base_url={stub.base_url}", *overrides)
        assert len(stub.requests) == sent, "cached translations are not requested again"


# --------------------------------------------------------------------------- Chinese reports

HAN = re.compile("[\u4e00-\u9fff]")
SEGMENTATION = re.compile("[\u4e00-\u9fff] [\u4e00-\u9fff]")


def _sent(stub) -> list[str]:
    return [m["content"] for r in stub.requests for m in r["messages"] if m["role"] == "user"]


def _no_spaces(text: str) -> str:
    return re.sub(r"\s", "", text)


def test_chinese_report_is_translated_after_deidentification(tmp_path: Path) -> None:
    rng = np.random.default_rng(11)
    report = make_report_zh("thyroid", "malignant", sample_findings("thyroid", "malignant", rng), rng, segmented=True)
    assert SEGMENTATION.search(report.text)
    with serve_openai(reply=translating_reply) as stub:
        stage = ReportStage(translator=_translator(stub.base_url, tmp_path))
        [outcome] = stage.process([(report.text, "thyroid")])
        [sent] = _sent(stub)
    assert sent.startswith("Report in Chinese:\n") and "[NAME]" in sent and "[DATE]" in sent
    assert not any(_no_spaces(value) in _no_spaces(sent) for value in report.phi)
    assert not SEGMENTATION.search(sent), "word segmentation is joined before the request"
    result = outcome.result
    assert result.language == "zh" and result.caption is not None and stage.translated == {"zh": 1}
    assert not HAN.search(result.caption.text) and "nodule" in result.caption.text
    assert result.caption.provenance.note.startswith("translated from 'zh' by stub-model (translate@1)")
    assert outcome.findings.get("tirads_category") in {"4a", "4b", "4c", "5"}
    assert HAN.search(outcome.text) and not any(value in outcome.text for value in report.phi)


def test_join_segmented_keeps_latin_spacing_and_placeholders() -> None:
    assert join_segmented("姓名 ： [NAME] 甲状腺 右叶 ， TI-RADS 4a 类 。\n超声 提示") == (
        "姓名： [NAME] 甲状腺右叶， TI-RADS 4a 类。\n超声提示")


ZH_RECIPE = """name: zh
sources:
  - {name: reports_zh, layout: report_corpus, path: ultrasound_reports_zh}
captions: {policy: [report, template]}
splits: {train: 0.8, validation: 0.1, test: 0.1}
"""
# The values the phantom plants in its Chinese reports, read back by their field labels.
PLANTED = re.compile(
    r"(?:姓 ?名|门诊号|住院号|检查号|ID|联系 ?电话|报告 ?医生|审核 ?医生) ?： ?(?P<field>\S+)"
    r"|(?:检查 ?日期|报告 ?日期) ?： ?(?P<date>.+?)(?= 联系|$)"
    r"|年龄 ?： ?(?P<age>9\d) ?岁"
    r"|临床 ?(?P<named>\S+?) ?医生"
    r"|^(?P<hospital>.+?) 超声 ?检查 ?报告单",
    re.M,
)


@pytest.fixture(scope="module")
def zh_corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[list[str]]]:
    """The phantom's Chinese corpus, a recipe for it, and each report's planted values."""
    root = tmp_path_factory.mktemp("zh")
    make_phantom(root / "data", per_class=1, seed=4, size=(64, 96), layouts=["report_corpus_zh"])
    (root / "zh.yaml").write_text(ZH_RECIPE, encoding="utf-8")
    annotation = json.loads((root / "data" / "ultrasound_reports_zh" / "annotation.json").read_text("utf-8-sig"))
    planted = [
        [_no_spaces(v) for m in PLANTED.finditer(r["report"]) for v in m.groupdict().values() if v]
        for split in annotation.values() for r in split
    ]
    assert all(len(values) >= 8 for values in planted), planted
    return root / "zh.yaml", root / "data", planted


def test_chinese_corpus_without_translation_falls_back_with_the_reason(zh_corpus, tmp_path: Path) -> None:
    recipe, data, planted = zh_corpus
    result = run(str(recipe), data, tmp_path / "out")
    rows = _rows(result.out)
    assert rows and result.stats["reports"]["languages"] == {"zh": len(planted)}
    assert "translated" not in result.stats["reports"] or not result.stats["reports"]["translated"]
    for r in rows:
        assert r["report_language"] == "zh" and r["caption_source"] == "template"
        assert "report: language 'zh' not in [en]" in r["caption_meta"]["fallback"]
        if r["report"] is not None:
            assert HAN.search(r["report"]) and "[NAME]" in r["report"]
            assert not any(value in _no_spaces(r["report"]) for values in planted for value in values)
    assert {r["organ"] for r in rows} == {0, 1, 2}
    assert any("organ_key" in n for n in result.stats["notices"]["reports_zh"])


def test_chinese_corpus_is_captioned_from_the_translation(zh_corpus, tmp_path: Path) -> None:
    recipe, data, planted = zh_corpus
    overrides = ["reports.translate=true", "llm.model=stub-model"]
    with serve_openai(reply=translating_reply) as stub:
        result = run(str(recipe), data, tmp_path / "out", f"llm.base_url={stub.base_url}", *overrides)
        sent = _sent(stub)
    assert len(sent) == result.stats["reports"]["translated"]["zh"] == len(planted)
    for request in sent:
        assert request.startswith("Report in Chinese:\n") and not SEGMENTATION.search(request)
        assert not any(value in _no_spaces(request) for values in planted for value in values)
    rows = _rows(result.out)
    for r in rows:
        assert r["caption_source"] == "report" and r["report_language"] == "zh", r["caption_meta"]
        assert r["caption_meta"]["note"].startswith("translated from 'zh' by stub-model (translate@1)")
        assert not HAN.search(r["caption"]) and not re.search(r"\[[A-Z]+\]", r["caption"])
