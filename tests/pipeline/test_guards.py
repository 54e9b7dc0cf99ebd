"""Guards found by trying to break the build: ids, output folders, accounting, early errors."""

from __future__ import annotations

import io
import json
import os
import shutil
import zlib
from pathlib import Path

import datasets
import numpy as np
import pytest
from PIL import Image

from echocaptions.imaging.normalise import normalise_file
from echocaptions.pipeline import BuildError, build
from echocaptions.recipe import RecipeError, load_recipe
from tests.pipeline.helpers import run


def _recipe(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "r.yaml"
    path.write_text(text)
    return path


def _folder(root: Path, n: int = 6) -> Path:
    rng = np.random.default_rng(0)
    for i in range(n):
        label = ("benign", "malignant")[i % 2]
        (root / label).mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (40, 50), dtype=np.uint8)).save(root / label / f"{i}.png")
    return root


FOLDER_RECIPE = "name: f\nsources:\n  - {name: f, layout: imagefolder, path: f, options: {organ: breast}}\n"


def test_same_files_read_twice_are_rejected_as_duplicate_ids(phantom_root: Path, tmp_path: Path) -> None:
    recipe = _recipe(
        tmp_path,
        "name: d\nsources:\n  - {name: a, layout: busi, path: BUSI}\n  - {name: b, layout: busi, path: BUSI}\n",
    )
    result = build(load_recipe(recipe, data_root=phantom_root, out=tmp_path / "out"), quiet=True)
    stats = result.stats
    assert stats["sources"]["b"]["kept"] == 0
    assert stats["sources"]["b"]["rejected"] == stats["sources"]["b"]["read"] == stats["sources"]["a"]["read"]
    reasons = [json.loads(line)["reason"] for line in result.rejects_path.read_text().splitlines()]
    assert any(r.startswith("duplicate id: the same dataset, path and frame as a:") for r in reasons)
    ds = datasets.load_dataset(str(result.out))
    ids = [i for part in ds.values() for i in part["id"]]
    assert len(ids) == len(set(ids)) == stats["rows"]


def test_output_folder_must_not_overlap_the_data_or_a_foreign_folder(tmp_path: Path) -> None:
    data = _folder(tmp_path / "data" / "f")
    recipe = _recipe(tmp_path, FOLDER_RECIPE)
    for out in (tmp_path / "data", tmp_path / "data" / "f" / "out", tmp_path):
        with pytest.raises(BuildError, match="overlaps the input"):
            build(load_recipe(recipe, data_root=tmp_path / "data", out=out), quiet=True)
    foreign = tmp_path / "notes"
    foreign.mkdir()
    (foreign / "README.md").write_text("my notes")
    with pytest.raises(BuildError, match="not empty and holds no earlier build"):
        build(load_recipe(recipe, data_root=tmp_path / "data", out=foreign), quiet=True)
    assert (foreign / "README.md").read_text() == "my notes"
    assert len(list(data.rglob("*.png"))) == 6
    out = tmp_path / "out"
    build(load_recipe(recipe, data_root=tmp_path / "data", out=out), quiet=True)
    (out / "data" / "mine.txt").write_text("kept")
    build(load_recipe(recipe, data_root=tmp_path / "data", out=out), quiet=True)
    assert (out / "data" / "mine.txt").read_text() == "kept"


def _png_with_chunk(arr: np.ndarray, kind: bytes, payload: bytes) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    data = buf.getvalue()
    chunk = len(payload).to_bytes(4, "big") + kind + payload
    chunk += zlib.crc32(kind + payload).to_bytes(4, "big")
    return data[:33] + chunk + data[33:]


def test_png_with_private_chunk_is_reencoded(tmp_path: Path) -> None:
    arr = np.random.default_rng(0).integers(0, 255, (30, 40), dtype=np.uint8)
    path = tmp_path / "p.png"
    path.write_bytes(_png_with_chunk(arr, b"prVt", b"PatientName=DOE^JOHN"))
    out = normalise_file(path, None)
    assert not out.passthrough and b"DOE^JOHN" not in out.png
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(out.png))), arr)


def test_accounting_counts_frames_and_filtered_items(phantom_root: Path, tmp_path: Path) -> None:
    result = run("lung", phantom_root, tmp_path / "lung", "video.fps=4", "video.max_frames=3")
    pocus = result.stats["sources"]["pocus"]
    assert pocus["frames_from_multi_frame_items"] > 0
    assert pocus["read"] == pocus["listed"] + pocus["frames_from_multi_frame_items"]
    assert pocus["read"] == pocus["kept"] + pocus["rejected"]
    thyroid = run("thyroid", phantom_root, tmp_path / "thy")
    assert thyroid.stats["sources"]["reports"]["not_selected"] > 0


def test_all_rejected_fails_and_writes_the_rejects(tmp_path: Path) -> None:
    for i in range(3):
        (tmp_path / "data" / "f" / "benign").mkdir(parents=True, exist_ok=True)
        (tmp_path / "data" / "f" / "benign" / f"{i}.png").write_bytes(b"")
    recipe = _recipe(tmp_path, FOLDER_RECIPE)
    with pytest.raises(BuildError, match="no row survived: all 3 items were rejected"):
        build(load_recipe(recipe, data_root=tmp_path / "data", out=tmp_path / "out"), quiet=True)
    assert len((tmp_path / "out" / "rejects.jsonl").read_text().splitlines()) == 3


def test_every_missing_source_is_reported_at_once(tmp_path: Path) -> None:
    recipe = load_recipe("multiorgan", data_root=tmp_path, out=tmp_path / "out")
    with pytest.raises(BuildError) as err:
        build(recipe, quiet=True)
    text = str(err.value)
    for name in ("busi", "ddti", "aul", "pocus"):
        assert f"({name})" in text and f"--source {name}=PATH" in text
    assert "(reports)" not in text, "optional sources are skipped, not errors"
    assert not (tmp_path / "out").exists()


def test_optional_sources_are_skipped_when_absent(phantom_root: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(phantom_root / "DDTI", data / "DDTI")
    result = run("thyroid", data, tmp_path / "out")
    assert set(result.stats["sources"]) == {"ddti"}
    assert set(result.stats["skipped_sources"]) == {"tn3k", "stanford", "reports"}
    assert result.stats["rows"] > 0


def test_bad_template_dir_fails_before_any_work(tmp_path: Path) -> None:
    _folder(tmp_path / "data" / "f")
    recipe = _recipe(tmp_path, FOLDER_RECIPE + "captions: {template_dir: /nonexistent/templates}\n")
    with pytest.raises(BuildError):
        build(load_recipe(recipe, data_root=tmp_path / "data", out=tmp_path / "out"), quiet=True)
    assert not (tmp_path / "out" / ".work" / "staged").exists()


def test_changed_image_content_redoes_its_shard(tmp_path: Path) -> None:
    data = _folder(tmp_path / "data" / "f")
    bad = data / "benign" / "0.png"
    bad.write_bytes(bad.read_bytes()[:40])
    recipe = _recipe(tmp_path, FOLDER_RECIPE)
    first = build(load_recipe(recipe, data_root=tmp_path / "data", out=tmp_path / "out"), quiet=True, keep_work=True)
    assert first.stats["rejected"] == 1
    Image.fromarray(np.full((40, 50), 7, dtype=np.uint8)).save(bad)
    second = build(load_recipe(recipe, data_root=tmp_path / "data", out=tmp_path / "out"), quiet=True, keep_work=True)
    assert second.stats["rejected"] == 0 and second.stats["rows"] == 6
    assert second.stats["image_stage"]["shards_resumed"] == 0
    assert second.stats["image_stage"]["passthrough_png"] == first.stats["image_stage"]["passthrough_png"] + 1
    third = build(load_recipe(recipe, data_root=tmp_path / "data", out=tmp_path / "out"), quiet=True)
    assert third.stats["image_stage"]["shards_resumed"] == 1
    assert third.stats["image_stage"]["passthrough_png"] == second.stats["image_stage"]["passthrough_png"]


def test_non_utf8_file_name_is_a_reject(tmp_path: Path) -> None:
    data = _folder(tmp_path / "data" / "f", n=2)
    shutil.copy(data / "benign" / "0.png", os.fsencode(data / "benign") + b"/bad\xff.png")
    recipe = _recipe(tmp_path, FOLDER_RECIPE)
    result = build(load_recipe(recipe, data_root=tmp_path / "data", out=tmp_path / "out"), quiet=True)
    reasons = [json.loads(line)["reason"] for line in result.rejects_path.read_text().splitlines()]
    assert reasons == ["file name is not valid UTF-8; rename the file"]
    assert result.stats["rows"] == 2


def test_set_into_a_scalar_and_a_recipe_name_shadowed_by_a_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(RecipeError, match="is not a mapping"):
        load_recipe("thyroid", overrides=["seed.x.y=1"])
    with pytest.raises(RecipeError, match="is not a mapping"):
        load_recipe("thyroid", overrides=["name.x=1"])
    monkeypatch.chdir(tmp_path)
    (tmp_path / "demo").mkdir()
    assert load_recipe("demo").name == "demo"
