"""One Hugging Face config per caption strategy: same rows and splits, the strategy's caption."""

from __future__ import annotations

from pathlib import Path

import datasets
import pyarrow.parquet as pq
import pytest
import yaml

from echocaptions.captions import strategies
from echocaptions.publish.hub import check_build
from tests.captions.openai_stub import serve_openai
from tests.pipeline.helpers import run


def _default_rows(out: Path) -> dict[str, dict]:
    rows = {}
    for shard in sorted((out / "data").glob("*.parquet")):
        for r in pq.read_table(shard, columns=["id", "split", "label", "captions"]).to_pylist():
            rows[r["id"]] = r
    return rows


def _card_header(out: Path) -> dict:
    text = (out / "README.md").read_text(encoding="utf-8")
    return yaml.safe_load(text.split("---\n")[1])


@pytest.fixture(scope="module")
def demo(phantom_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return run("demo", phantom_root, tmp_path_factory.mktemp("strategies") / "out").out


def test_each_strategy_config_loads_with_the_same_rows_and_its_own_caption(demo: Path) -> None:
    default = _default_rows(demo)
    names = datasets.get_dataset_config_names(str(demo))
    assert names[0] == "default" and set(names[1:]) == {"report_template", "template_only"}
    for name in names[1:]:
        ds = datasets.load_dataset(str(demo), name)
        assert {s: len(d) for s, d in ds.items()} == {
            s: sum(r["split"] == s for r in default.values()) for s in ds
        }
        for split, part in ds.items():
            for row in part:
                full = default[row["id"]]
                assert row["split"] == split == full["split"] and row["label"] == full["label"]
                assert (row["caption_source"], [row["caption"]]) == strategies.candidates(full, name)
    template_only = datasets.load_dataset(str(demo), "template_only", split="train")
    assert set(template_only["caption_source"]) == {"template"}
    mixed = datasets.load_dataset(str(demo), "report_template", split="train")
    assert set(mixed["caption_source"]) == {"report", "template"}


def test_card_counts_captions_per_strategy_and_passes_the_publish_check(demo: Path) -> None:
    header = _card_header(demo)
    infos = {i["config_name"]: i for i in header["dataset_info"]}
    assert set(infos) == {"default", "report_template", "template_only"}
    for info in infos.values():
        assert all(s["num_bytes"] > 0 and s["num_examples"] > 0 for s in info["splits"])
    card = (demo / "README.md").read_text(encoding="utf-8")
    import json

    stats = json.loads((demo / "stats.json").read_text())
    counts = stats["strategies"]["template_only"]["caption_sources"]
    assert counts == {"template": stats["rows"]}
    mixed = stats["strategies"]["report_template"]["caption_sources"]
    assert f"| `report_template` | {mixed['report']} | {mixed['template']} |" in card
    assert "machine-generated" not in card, "no LLM captions in this build"
    assert check_build(demo).splits == stats["splits"]


def test_llm_builds_write_llm_strategies_and_mark_llm_captions_machine_generated(
    phantom_root: Path, tmp_path: Path
) -> None:
    with serve_openai() as stub:
        out = run(
            "thyroid",
            phantom_root,
            tmp_path / "out",
            "captions.policy=[report, llm, template]",
            f"llm.base_url={stub.base_url}",
            "llm.model=stub-model",
            "output.strategy_images=true",
        ).out
    header = _card_header(out)
    assert [c["config_name"] for c in header["configs"]] == ["default", *strategies.PUBLISHED]
    assert "synthetic" in header["tags"]
    card = (out / "README.md").read_text(encoding="utf-8")
    assert "**machine-generated** by `stub-model`" in card
    llm_only = datasets.load_dataset(str(out), "llm_only", split="train")
    assert "image" in llm_only.features and llm_only[0]["image"].size[0] > 0
    assert set(llm_only["caption_source"]) <= {"llm", "template"} and "llm" in llm_only["caption_source"]


def test_strategy_configs_can_be_turned_off(phantom_root: Path, tmp_path: Path) -> None:
    out = run("demo", phantom_root, tmp_path / "out", "output.strategy_configs=false").out
    assert not (out / "strategies").exists()
    assert [c["config_name"] for c in _card_header(out)["configs"]] == ["default"]
    assert datasets.get_dataset_config_names(str(out)) == ["default"]


def test_template_variants_give_the_multi_strategy_several_captions(demo: Path) -> None:
    rows = list(_default_rows(demo).values())
    counts = [len(strategies.candidates(r, "template_multi")[1]) for r in rows]
    assert max(counts) == 4 and min(counts) >= 1
    for r in rows:
        _, texts = strategies.candidates(r, "template_multi")
        assert texts[0] == strategies.caption(r, "template_only") and len(set(texts)) == len(texts)
