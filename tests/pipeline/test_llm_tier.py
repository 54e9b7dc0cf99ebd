"""Builds with the LLM tier against a local OpenAI-protocol server: captions, cache, fallback."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from echocaptions.pipeline import BuildError, build
from echocaptions.recipe import RecipeError, load_recipe
from tests.captions.openai_stub import serve_openai
from tests.pipeline.helpers import parquet_digests

RECIPE = """name: llm
sources:
  - {{name: ddti, layout: ddti, path: DDTI}}
captions: {{policy: [report, llm, template]}}
llm: {{base_url: "{base_url}", model: stub-model, concurrency: 4, backoff_base: 0.01}}
"""


def _recipe(tmp_path: Path, base_url: str) -> Path:
    path = tmp_path / "r.yaml"
    path.write_text(RECIPE.format(base_url=base_url).replace(", backoff_base: 0.01", ""))
    return path


def _rows(out: Path) -> list[dict]:
    return [
        r
        for shard in sorted((out / "data").glob("*.parquet"))
        for r in pq.read_table(shard).drop(["image"]).to_pylist()
    ]


def test_llm_captions_are_chosen_cached_and_recorded(phantom_root: Path, tmp_path: Path) -> None:
    with serve_openai() as stub:
        recipe = load_recipe(_recipe(tmp_path, stub.base_url), data_root=phantom_root, out=tmp_path / "out")
        result = build(recipe, quiet=True)
        sent = stub.count
        rows = _rows(result.out)
        # Records with the same prompt share one request.
        assert 0 < sent <= result.stats["rows"]
        bodies = {json.dumps(body, sort_keys=True) for body in stub.requests}
        assert len(bodies) == sent, "no request is sent twice"
        by_source = {r["caption_source"] for r in rows}
        assert "llm" in by_source
        for r in rows:
            llm = [c for c in r["captions"] if c["source"] == "llm"]
            assert llm and llm[0]["model"] == "stub-model" and llm[0]["prompt_id"] == "caption"
            assert any(c["source"] == "template" for c in r["captions"])
            if r["caption_source"] == "llm":
                assert "thyroid" in r["caption"].lower()
                assert r["caption_meta"]["prompt_version"] is not None
        assert result.stats["caption_candidates"]["llm"] == result.stats["rows"]
        first = parquet_digests(result.out)
        again = build(
            load_recipe(_recipe(tmp_path, stub.base_url), data_root=phantom_root, out=tmp_path / "out"), quiet=True
        )
        assert stub.count == sent, "a rerun sends nothing already answered"
        assert parquet_digests(again.out) == first, "answers from the cache publish the same bytes"


def test_invalid_llm_answers_fall_back_to_the_template_with_the_reason(phantom_root: Path, tmp_path: Path) -> None:
    with serve_openai(reply=lambda body: "Breast ultrasound with a malignant mass.") as stub:
        recipe = load_recipe(
            _recipe(tmp_path, stub.base_url),
            data_root=phantom_root,
            out=tmp_path / "out",
            overrides=["captions.policy=[llm, template]", "llm.validation_retries=1"],
        )
        rows = _rows(build(recipe, quiet=True).out)
    assert {r["caption_source"] for r in rows} == {"template"}
    assert all("llm: no LLM caption passed validation" in r["caption_meta"]["fallback"] for r in rows)


def test_unreachable_server_fails_before_any_work(phantom_root: Path, tmp_path: Path) -> None:
    recipe = load_recipe(_recipe(tmp_path, "http://127.0.0.1:9/v1"), data_root=phantom_root, out=tmp_path / "out")
    with pytest.raises(BuildError, match="127.0.0.1:9"):
        build(recipe, quiet=True)
    assert not (tmp_path / "out" / ".work").exists()


def test_llm_policy_needs_an_llm_block(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text("name: x\nsources:\n  - {name: a, layout: busi, path: p}\ncaptions: {policy: [llm, template]}\n")
    with pytest.raises(RecipeError, match="no llm block"):
        load_recipe(path)


def test_optional_llm_tier_without_a_server_falls_back_with_the_reason(phantom_root: Path, tmp_path: Path) -> None:
    recipe = load_recipe(
        _recipe(tmp_path, "http://127.0.0.1:9/v1"),
        data_root=phantom_root,
        out=tmp_path / "out",
        overrides=["llm.optional=true"],
    )
    result = build(recipe, quiet=True)
    rows = _rows(result.out)
    assert rows and {r["caption_source"] for r in rows} <= {"report", "template"}
    assert "LLM server unavailable" in result.stats["llm_unavailable"]
    assert "127.0.0.1:9" in result.stats["llm_unavailable"]
    for r in rows:
        assert not any(c["source"] == "llm" for c in r["captions"])
        if r["caption_source"] == "template":
            assert "llm: LLM server unavailable at the start of the build" in r["caption_meta"]["fallback"]
