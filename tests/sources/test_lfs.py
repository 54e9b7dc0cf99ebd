"""COVID-BLUES cloned without `git lfs pull`: every video a Git LFS pointer, each one reject, one notice."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest

from echocaptions.schema import Reject
from echocaptions.sources import get_source_class
from echocaptions.sources.base import LFS_REASON
from tests.sources.conftest import PER_CLASS, SIZE, reasons

POINTER = re.compile(
    r"version https://git-lfs\.github\.com/spec/v1\noid sha256:(?P<oid>[0-9a-f]{64})\nsize (?P<size>\d+)\n"
)


WRITTEN: dict[str, bytes] = {}


@pytest.fixture(scope="module")
def pointers(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A COVID-BLUES clone without its LFS files; WRITTEN keeps each video as encoded before."""
    import echocaptions.synth.layout_covid_blues as writer
    from echocaptions.synth import make_phantom

    encode = writer._save_mp4

    def keep(frames: list, path: Path, fps: int = 10) -> None:
        encode(frames, path, fps)
        WRITTEN[path.name] = path.read_bytes()

    out = tmp_path_factory.mktemp("lfs")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(writer, "_save_mp4", keep)
        roots = make_phantom(out, per_class=PER_CLASS, seed=3, size=SIZE, layouts=["covid_blues", "busi"],
                             lfs_pointers=True)
    return roots["covid_blues"]


def test_pointers_stand_for_the_videos(pointers: Path, phantom: dict[str, Path]) -> None:
    videos = sorted(p.name for p in (phantom["covid_blues"] / "lus_videos").iterdir())
    assert sorted(p.name for p in (pointers / "lus_videos").iterdir()) == videos == sorted(WRITTEN)
    for name in videos:
        match = POINTER.fullmatch((pointers / "lus_videos" / name).read_text())
        assert match is not None, name
        real = WRITTEN[name]
        assert real[4:8] == b"ftyp"
        assert match["oid"] == hashlib.sha256(real).hexdigest() and int(match["size"]) == len(real)
    assert (pointers / "clinical_variables.csv").read_bytes() == (
        phantom["covid_blues"] / "clinical_variables.csv").read_bytes()


def test_every_pointer_is_one_reject_and_one_notice(pointers: Path, no_pixels: None) -> None:
    source = get_source_class("covid_blues")("cb", pointers)
    source.check()
    entries = list(source.items())
    rejects = [e for e in entries if isinstance(e, Reject)]
    videos = sorted(f"lus_videos/{p.name}" for p in (pointers / "lus_videos").iterdir())
    assert len(rejects) == len(entries) == len(videos) == 4 * PER_CLASS + 1
    why = reasons(rejects)
    assert sorted(why) == videos
    assert all(reason.startswith(f"{LFS_REASON}:") and "git lfs pull" in reason for reason in why.values())
    assert list(source.notices) == [LFS_REASON]
    assert source.notices[LFS_REASON].startswith(f"{len(videos)} file(s) under {pointers}")


def test_broken_clone_keeps_its_own_reasons(tmp_path: Path) -> None:
    from echocaptions.synth import make_phantom

    root = make_phantom(tmp_path, per_class=1, seed=3, size=SIZE, layouts=["covid_blues"], broken=True,
                        lfs_pointers=True)["covid_blues"]
    source = get_source_class("covid_blues")("cb", root)
    entries = list(source.items())
    assert all(isinstance(e, Reject) for e in entries)
    why = reasons([e for e in entries if isinstance(e, Reject)])
    assert why.pop("lus_videos/README.txt") == "unknown extension '.txt'"
    assert why.pop("lus_videos/clip_7.mp4") == "name does not follow patient_<ID>_<POINT>.mp4"
    assert why.pop("lus_videos/patient_99_L1.mp4") == "patient 99 has no row in clinical_variables.csv"
    pointer_files = {f"lus_videos/{p.name}" for p in (root / "lus_videos").glob("patient_*.mp4")} - {
        "lus_videos/patient_99_L1.mp4"}
    assert set(why) == pointer_files and all(r.startswith(LFS_REASON) for r in why.values())


def test_build_rejects_pointers_without_decoding_them(pointers: Path, tmp_path: Path) -> None:
    from echocaptions.pipeline import build
    from echocaptions.recipe import load_recipe

    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        "name: t\nsources:\n  - {name: cb, layout: covid_blues, path: COVID-BLUES}\n"
        "  - {name: busi, layout: busi, path: BUSI}\n"
        "image: {max_side: 64}\nvideo: {fps: 5, max_frames: 2}\noutput: {rows_per_shard: 40, shard_items: 16}\n"
    )
    result = build(load_recipe(recipe, data_root=pointers.parent, out=tmp_path / "out"), quiet=True)
    n_videos = len(list((pointers / "lus_videos").iterdir()))
    rejects = [json.loads(line) for line in (result.out / "rejects.jsonl").read_text().splitlines()]
    mine = [r for r in rejects if r["source"] == "cb"]
    assert len(mine) == n_videos
    assert all(r["reason"].startswith(LFS_REASON) and r["stage"] == "enumerate" for r in mine)
    stats = json.loads((result.out / "stats.json").read_text())
    assert stats["sources"]["cb"]["read"] == n_videos and stats["sources"]["cb"]["kept"] == 0
    assert stats["reject_reasons"][LFS_REASON] == n_videos
    assert len(stats["notices"]["cb"]) == 1 and "git lfs pull" in stats["notices"]["cb"][0]
    assert "busi" not in stats["notices"] and stats["rows"] > 0
