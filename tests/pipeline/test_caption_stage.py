"""The caption stage runs per shard on the executor: resumable, and the same bytes with any number of workers."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from echocaptions.resources import bundled_dir
from echocaptions.stats import without_timings
from tests.captions.openai_stub import serve_openai
from tests.pipeline.helpers import parquet_digests, run

LLM_RECIPE = """name: llm-shards
sources:
  - {{name: ddti, layout: ddti, path: DDTI}}
  - {{name: reports, layout: report_corpus, path: ultrasound_reports, organs: [thyroid]}}
captions: {{policy: [report, llm, template]}}
output: {{shard_items: 6, rows_per_shard: 40}}
image: {{max_side: 96}}
llm: {{base_url: "{base_url}", model: stub-model, concurrency: 4}}
"""


def _llm_recipe(tmp_path: Path, base_url: str, data_root: Path, out: Path):
    from echocaptions.recipe import load_recipe

    path = tmp_path / "llm.yaml"
    path.write_text(LLM_RECIPE.format(base_url=base_url))
    return load_recipe(path, data_root=data_root, out=out)


def _answers(cache: Path) -> int:
    with sqlite3.connect(cache) as db:
        return db.execute("SELECT COUNT(*) FROM answers").fetchone()[0]


def test_done_caption_shards_are_skipped_and_a_changed_template_reruns_them(
    phantom_root: Path, tmp_path: Path
) -> None:
    templates = tmp_path / "templates"
    shutil.copytree(bundled_dir("templates"), templates)
    out = tmp_path / "out"
    first = run("demo", phantom_root, out, f"captions.template_dir={templates}", keep_work=True)
    stage = first.stats["caption_stage"]
    assert stage["shards"] > 3 and stage["shards_resumed"] == 0
    digests = parquet_digests(out)

    again = run("demo", phantom_root, out, f"captions.template_dir={templates}", keep_work=True)
    assert again.stats["caption_stage"]["shards_resumed"] == stage["shards"]
    assert parquet_digests(out) == digests

    # A template edit that changes no caption still makes every shard caption again.
    thyroid = templates / "thyroid.j2"
    thyroid.write_text(thyroid.read_text(encoding="utf-8") + "{# edited #}\n", encoding="utf-8")
    edited = run("demo", phantom_root, out, f"captions.template_dir={templates}", keep_work=True)
    assert edited.stats["caption_stage"]["shards_resumed"] == 0
    assert parquet_digests(out) == digests


def test_two_workers_caption_the_same_bytes_and_fold_the_shard_caches(phantom_root: Path, tmp_path: Path) -> None:
    from echocaptions.pipeline import build

    with serve_openai() as stub:
        one = build(
            _llm_recipe(tmp_path, stub.base_url, phantom_root, tmp_path / "one"), workers=1, quiet=True, keep_work=True
        )
        sent_one = stub.count
        two = build(
            _llm_recipe(tmp_path, stub.base_url, phantom_root, tmp_path / "two"), workers=2, quiet=True, keep_work=True
        )
        sent_two = stub.count - sent_one
        assert sent_one == sent_two > 0, "shards share nothing, so both builds ask the same questions"
        assert one.stats["caption_stage"]["shards"] > 3
        assert one.stats["caption_sources"].get("llm", 0) > 0
        assert parquet_digests(one.out) == parquet_digests(two.out)
        # Wall times and rates are the only numbers that differ between two runs.
        stats_one, stats_two = (without_timings(json.loads((r.out / "stats.json").read_text())) for r in (one, two))
        assert stats_one == stats_two

        # Two shards may ask the same question; the build's cache keeps one answer per question.
        questions = {json.dumps(body, sort_keys=True) for body in stub.requests[:sent_one]}
        for result in (one, two):
            assert (result.out / ".work" / "llm").is_dir()
            assert not list((result.out / ".work").glob("llm/*.sqlite*")), "shard caches are folded in"
            assert _answers(result.out / ".cache" / "llm.sqlite") == len(questions)

        before = stub.count
        build(_llm_recipe(tmp_path, stub.base_url, phantom_root, tmp_path / "two"), workers=2, quiet=True)
        assert stub.count == before


class _StopAfterFirstCaptionShard:
    """A progress bar factory that presses Ctrl-C once the first caption shard is done."""

    def __call__(self, total: int, desc: str):
        stop = desc == "captions"

        class Bar:
            def update(self, n: int = 1) -> None:
                if stop and n:
                    raise KeyboardInterrupt

            def close(self) -> None: ...

        return Bar()


@pytest.mark.parametrize("workers", [1, 2])
def test_a_build_stopped_mid_caption_stage_resumes_without_paying_again(
    phantom_root: Path, tmp_path: Path, workers: int
) -> None:
    from echocaptions.pipeline import build

    with serve_openai() as stub:
        full = build(_llm_recipe(tmp_path, stub.base_url, phantom_root, tmp_path / "full"), quiet=True)
        needed = stub.count
    with serve_openai(delay=0.02) as stub:
        recipe = _llm_recipe(tmp_path, stub.base_url, phantom_root, tmp_path / "out")
        with pytest.raises(KeyboardInterrupt):
            build(recipe, workers=workers, quiet=True, progress=_StopAfterFirstCaptionShard())
        paid = stub.count
        assert 0 < paid < needed
        before = {json.dumps(body, sort_keys=True) for body in stub.requests}
        resumed = build(
            _llm_recipe(tmp_path, stub.base_url, phantom_root, tmp_path / "out"), workers=workers, quiet=True,
            keep_work=True,
        )
        again = [json.dumps(body, sort_keys=True) for body in stub.requests[paid:]]
    paid_twice = [body for body in again if body in before]
    if workers == 1:
        assert not paid_twice, "no answered request is sent again"
    else:
        # Shards running when the build stopped were killed: what they committed is reused,
        # only their requests in flight (at most llm.concurrency each) may be paid again.
        assert len(paid_twice) <= workers * 4
    assert again, "the resumed build finished the work"
    assert resumed.stats["caption_stage"]["shards_resumed"] >= 1
    assert not list((tmp_path / "out" / ".work").glob("llm/*.sqlite*"))
    assert parquet_digests(resumed.out) == parquet_digests(full.out)


def test_a_captioned_shard_that_no_longer_matches_its_staged_rows_is_captioned_again(
    phantom_root: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    first = run("demo", phantom_root, out, keep_work=True)
    digests = parquet_digests(out)
    captioned = sorted((out / ".work" / "captioned").glob("*.parquet"))
    assert len(captioned) == first.stats["caption_stage"]["shards"]
    captioned[0].write_bytes(b"PAR1 not a shard")
    (out / ".work" / "captioned" / captioned[1].name.replace(".parquet", ".done")).write_text("{}")
    again = run("demo", phantom_root, out, keep_work=True)
    assert again.stats["caption_stage"]["shards_resumed"] == first.stats["caption_stage"]["shards"] - 2
    assert parquet_digests(out) == digests
