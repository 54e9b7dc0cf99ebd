"""Non-English reports translated to English through the LLM tier, de-identified before and after."""

from __future__ import annotations

import re
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from echocaptions.captions.llm import LLMCaptioner, LLMConfig
from echocaptions.captions.report_stage import ReportStage
from echocaptions.captions.translate import ReportTranslator
from echocaptions.recipe import RecipeError, load_recipe
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


def _translate(text: str) -> str:
    for es, en in sorted(ES_EN.items(), key=lambda kv: -len(kv[0])):
        text = text.replace(es, en)
    return text


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
