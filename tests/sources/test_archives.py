"""BUSI and AUL as their archives unzip: wrapper folders above the layout, __MACOSX beside it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from echocaptions.sources import SourceError, get_source_class
from tests.sources.conftest import PER_CLASS, SIZE, read

BUSI = "Dataset_BUSI_with_GT"
AUL = "Annotated_Ultrasound_Liver_Yiming"


@pytest.fixture(scope="module")
def wrapped(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from echocaptions.synth import make_phantom

    return make_phantom(tmp_path_factory.mktemp("wrapped"), per_class=PER_CLASS, seed=3, size=SIZE,
                        layouts=["busi", "aul"], wrappers=True, variants=True)


def files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def test_phantom_wrappers_are_the_unzipped_archives(wrapped: dict[str, Path]) -> None:
    assert [p.name for p in wrapped["busi"].iterdir()] == ["archive"]
    assert [p.name for p in (wrapped["busi"] / "archive").iterdir()] == [BUSI]
    assert [p.name for p in wrapped["aul"].iterdir()] == [AUL]
    assert sorted(p.name for p in (wrapped["aul"] / AUL).iterdir()) == ["Benign", "Malignant", "Normal"]


@pytest.mark.parametrize("layout", ["busi", "aul"])
def test_wrapped_layout_gives_the_items_of_the_plain_one(
    layout: str, wrapped: dict[str, Path], phantom: dict[str, Path]
) -> None:
    plain, _ = read(layout, phantom[layout])
    got, rejects = read(layout, wrapped[layout])
    assert rejects == []
    assert [i.id for i in got] == [i.id for i in plain]
    assert [i.label for i in got] == [i.label for i in plain]
    inner = wrapped[layout] / ("archive" if layout == "busi" else "")
    assert all(Path(i.path).is_file() and Path(i.path).is_relative_to(inner) for i in got)


def _move_under(root: Path, layout_folder: Path, *wrappers: str) -> Path:
    target = root.joinpath(*wrappers)
    target.mkdir(parents=True)
    shutil.copytree(layout_folder, target / layout_folder.name)
    return root


@pytest.mark.parametrize("wrappers", [(), ("archive",), ("downloads", "kaggle")])
def test_busi_under_up_to_two_wrappers(
    tmp_path: Path, phantom: dict[str, Path], wrappers: tuple[str, ...]
) -> None:
    root = _move_under(tmp_path / "BUSI", phantom["busi"] / BUSI, *wrappers)
    plain, _ = read("busi", phantom["busi"])
    got, rejects = read("busi", root)
    assert rejects == [] and [i.id for i in got] == [i.id for i in plain]


@pytest.mark.parametrize("wrappers", [(), ("x",), ("downloads", "zenodo")])
def test_aul_under_up_to_two_wrappers(
    tmp_path: Path, phantom: dict[str, Path], wrappers: tuple[str, ...]
) -> None:
    root = tmp_path / "AUL"
    target = root.joinpath(*wrappers, AUL)
    shutil.copytree(phantom["aul"], target)
    plain, _ = read("aul", phantom["aul"])
    got, rejects = read("aul", root)
    assert rejects == [] and [i.id for i in got] == [i.id for i in plain]
    assert got[0].source_path == plain[0].source_path == "Benign/image/1.jpg"


def test_three_wrappers_name_what_was_found_and_where(tmp_path: Path, phantom: dict[str, Path]) -> None:
    root = _move_under(tmp_path / "BUSI", phantom["busi"] / BUSI, "a", "b", "c")
    (root / "readme.txt").write_text("from kaggle")
    with pytest.raises(SourceError) as err:
        get_source_class("busi")("busi", root).check()
    message = str(err.value)
    assert "found in" in message and "a/, readme.txt" in message
    assert "looked in ., a, a/b (under" in message and "a/b/c" not in message.split("found in")[0]
    assert BUSI in message and "Al-Dhabyani" in message


def test_aul_error_lists_top_entries(tmp_path: Path) -> None:
    root = tmp_path / "AUL"
    (root / "zenodo" / "record" / "deep" / "Benign" / "image").mkdir(parents=True)
    (root / "7272660.zip").write_bytes(b"PK")
    with pytest.raises(SourceError) as err:
        get_source_class("aul")("aul", root).check()
    message = str(err.value)
    assert "found in" in message and "7272660.zip, zenodo/" in message
    assert "zenodo/record" in message and "'aul'" in message and "7272660" in message


def test_macosx_folder_is_not_the_data(tmp_path: Path, phantom: dict[str, Path]) -> None:
    root = _move_under(tmp_path / "BUSI", phantom["busi"] / BUSI, "archive")
    fork = root / "__MACOSX" / "archive" / BUSI / "benign"
    fork.mkdir(parents=True)
    (fork / "._benign (1).png").write_bytes(b"\x00\x05\x16\x07")
    got, rejects = read("busi", root)
    assert rejects == [] and all("__MACOSX" not in i.path for i in got)
    assert len(got) == 3 * PER_CLASS


def test_layout_found_twice_is_an_error(tmp_path: Path, phantom: dict[str, Path]) -> None:
    root = tmp_path / "BUSI"
    for copy in ("copy1", "copy2"):
        shutil.copytree(phantom["busi"] / BUSI, root / copy / BUSI)
    with pytest.raises(SourceError, match="in 2 places") as err:
        read("busi", root)
    assert str(root / "copy1" / BUSI) in str(err.value) and str(root / "copy2" / BUSI) in str(err.value)


def test_malignant_images_without_liver_or_outline_load(wrapped: dict[str, Path]) -> None:
    base = wrapped["aul"] / AUL
    items, rejects = read("aul", wrapped["aul"])
    assert rejects == []
    on_disk = {p.stem: p for p in (base / "Malignant" / "image").iterdir()}
    malignant = {Path(i.source_path).stem: i for i in items if i.label == "malignant"}
    assert set(malignant) == set(on_disk)
    lacking = 0
    for stem, item in malignant.items():
        present = {kind for kind in ("outline", "liver", "mass")
                   if (base / "Malignant" / "segmentation" / kind / f"{stem}.json").is_file()}
        assert set(item.extra["segmentation"]) == present
        assert item.findings == {"liver_lesion": "mass" if "mass" in present else None}
        lacking += len({"outline", "liver"} - present)
        for rel in item.extra["segmentation"].values():
            assert json.loads((base / rel).read_text())
    assert lacking == 2


def test_archives_build_with_every_image(wrapped: dict[str, Path], tmp_path: Path) -> None:
    import datasets

    from echocaptions.pipeline import build
    from echocaptions.recipe import load_recipe

    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        "name: t\nsources:\n  - {name: busi, layout: busi, path: BUSI}\n  - {name: aul, layout: aul, path: AUL}\n"
        "image: {max_side: 64}\noutput: {rows_per_shard: 40, shard_items: 16}\n"
    )
    result = build(load_recipe(recipe, data_root=wrapped["busi"].parent, out=tmp_path / "out"), quiet=True)
    stats = result.stats
    assert stats["read"] == 2 * 3 * PER_CLASS
    assert stats["rows"] + stats["rejected"] == stats["read"]
    assert not [r for r in stats["reject_reasons"] if "decode" in r or "read" in r]
    ds = datasets.load_dataset(str(result.out))
    paths = {r["source_path"] for part in ds.values() for r in part}
    rejected = {json.loads(line)["path"] for line in (result.out / "rejects.jsonl").read_text().splitlines()}
    assert {f"Malignant/image/{n}.jpg" for n in (1, 2)} <= paths | rejected
    assert all(not p.startswith(("archive/", AUL)) for p in paths)
