"""Bad input: rejected with a reason, the build goes on; recipe errors stop before any work."""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import pytest

from echocaptions.pipeline import BuildError, build
from echocaptions.recipe import load_recipe
from tests.pipeline.helpers import run


@pytest.fixture(scope="module")
def broken_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from echocaptions.synth import make_phantom

    root = tmp_path_factory.mktemp("broken")
    make_phantom(root, per_class=2, seed=1, size=(64, 96), broken=True)
    return root


def test_broken_items_become_rejects_and_the_build_goes_on(broken_root: Path, tmp_path: Path) -> None:
    result = run("multiorgan", broken_root, tmp_path / "out")
    stats = result.stats
    rejects = [json.loads(line) for line in result.rejects_path.read_text().splitlines()]
    assert len(rejects) == stats["rejected"] > 0
    assert stats["rows"] + stats["rejected"] == stats["read"]
    for source in stats["sources"].values():
        assert source["kept"] + source["rejected"] == source["read"]
    reasons = " | ".join(r["reason"] for r in rejects)
    for expected in ("unreadable image", "xml", "mask without"):
        assert expected in reasons.lower(), (expected, reasons)
    assert all({"source", "path", "reason", "stage"} <= set(r) for r in rejects)
    assert "0x" not in reasons
    ds = datasets.load_dataset(str(result.out))
    assert sum(len(p) for p in ds.values()) == stats["rows"]


def test_missing_source_folder_fails_before_any_work(tmp_path: Path) -> None:
    recipe = load_recipe("thyroid", data_root=tmp_path / "nowhere", out=tmp_path / "out")
    with pytest.raises(BuildError) as err:
        build(recipe, quiet=True)
    message = str(err.value)
    assert "ddti" in message and "DDTI" in message
    assert "Pedraza" in message
    assert not (tmp_path / "out").exists()


def test_empty_source_folder_fails_before_any_work(tmp_path: Path) -> None:
    (tmp_path / "data" / "Dataset_BUSI_with_GT").mkdir(parents=True)
    (tmp_path / "data" / "BUSI").mkdir()
    recipe = load_recipe("breast", data_root=tmp_path / "data", out=tmp_path / "out")
    with pytest.raises(BuildError, match="busi"):
        build(recipe, quiet=True)
    assert not (tmp_path / "out").exists()


def test_demo_recipe_makes_its_phantom_when_the_data_root_is_empty(tmp_path: Path) -> None:
    recipe = load_recipe(
        "demo",
        data_root=tmp_path / "phantom",
        out=tmp_path / "out",
        overrides=["synth.per_class=2", "synth.size=[64, 96]", "image.max_side=96"],
    )
    result = build(recipe, quiet=True)
    assert (tmp_path / "phantom").is_dir()
    assert set(result.stats["organs"]) == {"breast", "thyroid", "liver", "lung"}
    rejects = [json.loads(line) for line in result.rejects_path.read_text().splitlines()]
    for r in rejects:
        assert r["reason"].startswith("duplicate_of:pocus-"), r
        assert r["path"].rsplit(" frame ", 1)[0] in r["reason"], "only frames of one clip are near-duplicates"
