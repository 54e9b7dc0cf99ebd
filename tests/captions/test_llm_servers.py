"""Several LLM servers: requests are shared among them, and the build is the one-server build."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from echocaptions.pipeline import BuildError, build
from echocaptions.recipe import RecipeError, load_recipe
from echocaptions.stats import without_timings
from tests.captions.openai_stub import serve_openai

RECIPE = """name: llm
sources:
  - {{name: ddti, layout: ddti, path: DDTI}}
captions: {{policy: [report, llm, template]}}
llm: {{base_url: {base_url}, model: stub-model, concurrency: 2}}
"""


def _recipe(tmp_path: Path, base_url: str | list[str], out: Path):
    path = tmp_path / f"{out.name}.yaml"
    path.write_text(RECIPE.format(base_url=json.dumps(base_url)))
    return load_recipe(path, out=out, data_root=tmp_path / "data")


def _published(out: Path) -> tuple[dict[str, str], list[dict]]:
    """Digests of the published files but Parquet, and the Parquet rows."""
    files = sorted(
        p for p in out.rglob("*")
        if p.is_file() and not {".work", ".cache"} & set(p.relative_to(out).parts) and p.suffix != ".parquet"
    )
    rows = [r for shard in sorted(out.rglob("*.parquet")) for r in pq.read_table(shard).to_pylist()]
    def digest(p: Path) -> str:
        if p.name == "stats.json":  # per-stage wall times differ between two runs; everything else must not
            text = json.dumps(without_timings(json.loads(p.read_text())), sort_keys=True)
            return hashlib.sha256(text.encode()).hexdigest()
        return hashlib.sha256(p.read_bytes()).hexdigest()

    return {p.relative_to(out).as_posix(): digest(p) for p in files}, rows


@pytest.fixture
def data(phantom_root: Path, tmp_path: Path) -> Path:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "DDTI").symlink_to(phantom_root / "DDTI", target_is_directory=True)
    return tmp_path / "data"


def test_two_servers_share_the_requests_and_build_the_same_bytes(data: Path, tmp_path: Path) -> None:
    with serve_openai() as one, serve_openai() as two:
        single = build(_recipe(tmp_path, one.base_url, tmp_path / "single"), quiet=True)
        one.reset()
        both = build(_recipe(tmp_path, [one.base_url, two.base_url], tmp_path / "both"), quiet=True)
        assert one.count > 0 and two.count > 0, "both servers answer requests"
    assert single.stats["caption_sources"]["llm"] > 0
    assert _published(both.out) == _published(single.out)


def test_every_server_is_checked_before_any_work(data: Path, tmp_path: Path) -> None:
    with serve_openai() as gone:
        dead = gone.base_url
    with serve_openai() as one:
        recipe = _recipe(tmp_path, [one.base_url, dead], tmp_path / "out")
        with pytest.raises(BuildError, match=f"no OpenAI-compatible server answers at {dead}"):
            build(recipe, quiet=True)
        assert one.count == 0
    assert not (tmp_path / "out" / ".work").exists()


def test_a_list_of_servers_must_not_be_empty_or_repeat(data: Path, tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match="at least one URL and no URL twice"):
        _recipe(tmp_path, [], tmp_path / "empty")
    with pytest.raises(RecipeError, match="at least one URL and no URL twice"):
        _recipe(tmp_path, ["http://127.0.0.1:9/v1"] * 2, tmp_path / "twice")
