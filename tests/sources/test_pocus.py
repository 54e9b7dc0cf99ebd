"""Lung POCUS: videos matched to dataset_metadata.csv rows; patients from the metadata."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import pytest

from echocaptions.sources import SourceError, get_source_class
from echocaptions.sources.pocus import PocusSource
from tests.sources.conftest import PER_CLASS, read, reasons


def rows(data: Path) -> dict[str, dict[str, str]]:
    with open(data / "dataset_metadata.csv", newline="") as fh:
        return {r["Filename"]: r for r in csv.DictReader(fh)}


def test_phantom_items(phantom: dict[str, Path], no_pixels: None) -> None:
    data = phantom["pocus"]
    items, rejects = read("pocus", data)
    assert rejects == []
    assert Counter(i.label for i in items) == {
        "covid": PER_CLASS, "pneumonia": PER_CLASS, "normal": PER_CLASS, "viral_pneumonia": PER_CLASS}
    assert all(i.expand and i.frame is None and i.organ == "lung" for i in items)
    assert {i.view for i in items} == {"convex", "linear"}
    assert {Path(i.source_path).suffix for i in items} >= {".mp4"}
    table = rows(data)
    for item in items:
        row = table[Path(item.source_path).stem]
        assert item.patient_id == (row["Patient ID / Name"] or None)
        assert item.view == row["Probe"]
        assert item.findings["lung_b_lines"] == {"1": "multiple", "0": "absent"}[row["B-lines"]]
        assert item.findings["lung_a_lines"] == {"1": "present", "0": "absent"}[row["A-lines"]]
        assert item.license == (PocusSource.license if row["License"] == "None" else row["License"])
    patients = Counter(i.patient_id for i in items if i.patient_id)
    assert max(patients.values()) >= 2


def test_repository_root_and_data_folder_give_the_same_items(phantom: dict[str, Path]) -> None:
    from_data, _ = read("pocus", phantom["pocus"])
    from_repo, _ = read("pocus", phantom["pocus"].parent)
    assert [i.id for i in from_data] == [i.id for i in from_repo]


def test_files_without_a_row_use_the_name_prefix(tmp_path: Path) -> None:
    (tmp_path / "pocus_images" / "linear").mkdir(parents=True)
    (tmp_path / "pocus_images" / "linear" / "Vir-Grepmed-3.png").write_bytes(b"png")
    (tmp_path / "dataset_metadata.csv").write_text(
        "Filename,Label,Patient ID / Name,Consolidations,Effusion\nOther,COVID-19,12,1,1\n")
    items, rejects = read("pocus", tmp_path)
    assert rejects == []
    (item,) = items
    assert (item.label, item.patient_id, item.view, item.expand) == ("viral_pneumonia", None, "linear", False)


def test_consolidation_flag_without_detail_is_present(tmp_path: Path) -> None:
    (tmp_path / "pocus_videos" / "convex").mkdir(parents=True)
    (tmp_path / "pocus_videos" / "convex" / "Pneu-Atlas-1.gif").write_bytes(b"gif")
    (tmp_path / "dataset_metadata.csv").write_text(
        "Filename,Label,Patient ID / Name,Consolidations,Effusion,Probe\n"
        "Pneu-Atlas-1,Bacterial pneumonia,7,1,1,convex\n")
    (item,), _ = read("pocus", tmp_path)
    assert item.label == "pneumonia" and item.patient_id == "7"
    assert item.findings == {"lung_consolidation": "present", "lung_effusion": "present"}


def test_broken_inputs_become_rejects(broken_phantom: dict[str, Path], no_pixels: None) -> None:
    items, rejects = read("pocus", broken_phantom["pocus"])
    why = reasons(rejects)
    assert "label outside vocabulary" in why["pocus_videos/linear/Xyz-Unknown-1.mp4"]
    assert why["pocus_videos/convex/README.txt"].startswith("unknown extension")
    assert "pocus_videos/convex/Cov-Broken-1.mp4" in {i.source_path for i in items}


def test_bad_root_names_layout_and_publisher(tmp_path: Path) -> None:
    (tmp_path / "repo" / "data" / "pocus_videos").mkdir(parents=True)
    (tmp_path / "repo" / "README.md").write_text("no metadata")
    for root in (tmp_path / "missing", tmp_path / "repo"):
        with pytest.raises(SourceError) as err:
            get_source_class("pocus")("pocus", root).check()
        message = str(err.value)
        assert "'pocus'" in message and "dataset_metadata.csv" in message
        assert "jannisborn/covid19_ultrasound" in message and "Born" in message


# --------------------------------------------------------------------------- the real files' spellings

FLAG_COLUMNS = ("B-lines", "A-lines", "Effusion", "Pleural line irregularities", "Consolidations")
LABEL_OF = {"COVID-19": "covid", "Bacterial pneumonia": "pneumonia", "regular": "normal",
            "Viral pneumonia": "viral_pneumonia"}


@pytest.fixture(scope="module")
def variants(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from echocaptions.synth import make_phantom

    roots = make_phantom(tmp_path_factory.mktemp("pocus_variants"), per_class=2, seed=4, size=(64, 96),
                         layouts=["pocus"], variants=True)
    return roots["pocus"]


def test_real_spellings_are_all_read(variants: Path, no_pixels: None) -> None:
    items, rejects = read("pocus", variants)
    assert rejects == []
    files = sorted(p.relative_to(variants).as_posix() for p in (variants / "pocus_videos").rglob("*")
                   if p.is_file())
    assert sorted(i.source_path for i in items) == files
    assert {Path(f).suffix for f in files} >= {".mp4", ".MP4", ".mov", ".avi", ".mpeg", ".gif"}
    folders = {part for f in files for part in Path(f).parts[1:-1]}
    assert folders >= {"convex", "Convex", "linear", "label_uncertain"}
    assert any("_" in Path(f).name for f in files) and any(" " in Path(f).name for f in files)
    table = rows(variants)
    for item in items:
        stem = Path(item.source_path).name.rsplit(".", 1)[0]
        row = table.get(stem.strip())
        if row is None:
            assert item.extra == {"metadata_row": "no"} and item.patient_id is None
            assert item.label == LABEL_OF[{"Cov": "COVID-19", "Pneu": "Bacterial pneumonia", "Reg": "regular",
                                           "Vir": "Viral pneumonia"}[stem.split("_")[0]]]
            continue
        assert item.label == LABEL_OF[row["Label"]] and item.view == row["Probe"]
        uncertain = "label_uncertain" in row["Current location"]
        assert (item.extra.get("label_uncertain") == "yes") == uncertain
        if all(row[c] == "0" for c in FLAG_COLUMNS) and row["Healthy"] != "1":
            assert item.findings == {} and item.extra["findings_unrated"] == "yes"
        else:
            assert item.findings["lung_b_lines"] == {"1": "multiple", "0": "absent"}[row["B-lines"]]
    assert any(i.extra.get("metadata_row") == "no" for i in items)
    assert any(i.extra.get("label_uncertain") for i in items if "label_uncertain/" in i.source_path)


def test_variant_notices_count_uncertain_and_absent_clips(variants: Path) -> None:
    source = PocusSource("pocus", variants)
    items = [e for e in source.items() if not hasattr(e, "reason")]
    uncertain = sum(1 for i in items if i.extra.get("label_uncertain"))
    stems = {Path(i.source_path).name.rsplit(".", 1)[0].strip() for i in items}
    absent = [name for name, r in rows(variants).items()
              if r["Current location"] == "butterfly" and name not in stems]
    assert uncertain >= 2 and absent
    assert source.notices["pocus_label_uncertain"].startswith(f"{uncertain} POCUS clip(s)")
    assert source.notices["pocus_absent_clips"].startswith(f"{len(absent)} clip(s)")
    assert "parse_butterfly.sh" in source.notices["pocus_absent_clips"]


def test_default_phantom_has_no_notices(phantom: dict[str, Path]) -> None:
    source = PocusSource("pocus", phantom["pocus"])
    list(source.items())
    assert source.notices == {}


@pytest.mark.parametrize(("name", "label"), [
    ("Cov-Atlas+(44).gif", "covid"), ("Cov_combatting_Image1.mp4", "covid"),
    ("Pneu_AIR BRONC2.mov", "pneumonia"), ("pneu-everyday.gif", "pneumonia"),
    ("Pneu-grep-pneumonia1.mp4", "pneumonia"), ("Reg_Alines-1-90.mov", "normal"),
    ("Reg-bcpocus.gif", "normal"), ("Vir_prospective_file1.mp4", "viral_pneumonia"),
    ("Vir-Grepmed-3.mpeg", "viral_pneumonia"), ("Reg NormalLung.MP4", "normal"),
])
def test_name_prefix_with_either_separator(tmp_path: Path, name: str, label: str) -> None:
    (tmp_path / "pocus_videos" / "linear").mkdir(parents=True)
    (tmp_path / "pocus_videos" / "linear" / name).write_bytes(b"clip")
    (tmp_path / "dataset_metadata.csv").write_text("Filename,Label\nOther,COVID-19\n")
    (item,), rejects = read("pocus", tmp_path)
    assert rejects == [] and item.label == label and item.view == "linear" and item.patient_id is None


@pytest.mark.parametrize(("name", "prefix"), [
    ("Vir_or_Pneu_prospective_file4.mp4", "Vir_or_Pneu"), ("dknow-C_ConvexProb_score0.jpg", "dknow")])
def test_name_without_one_known_class_is_a_reject(tmp_path: Path, name: str, prefix: str) -> None:
    (tmp_path / "pocus_videos" / "linear" / "label_uncertain").mkdir(parents=True)
    (tmp_path / "pocus_videos" / "linear" / "label_uncertain" / name).write_bytes(b"clip")
    (tmp_path / "dataset_metadata.csv").write_text("Filename,Label\nOther,COVID-19\n")
    items, rejects = read("pocus", tmp_path)
    assert items == []
    why = reasons(rejects)[f"pocus_videos/linear/label_uncertain/{name}"]
    assert why.startswith("label outside vocabulary") and repr(prefix) in why


def test_rows_match_despite_spaces_and_case(tmp_path: Path) -> None:
    folder = tmp_path / "pocus_videos" / "linear" / "label_uncertain"
    folder.mkdir(parents=True)
    for name in ("Cov_bolzano_sliding .mpeg", "Cov_bolzano_Linee B .mpeg", "Cov_bolzano_linee B.mpeg",
                 "COV_BOLZANO_WL 2.mpeg"):
        (folder / name).write_bytes(b"clip")
    (tmp_path / "dataset_metadata.csv").write_text(
        "Current location,Filename,Label,Probe,Patient ID / Name\n"
        "pocus_videos/linear/label_uncertain,Cov_bolzano_sliding,COVID-19,linear,1\n"
        "pocus_videos/linear/label_uncertain,Cov_bolzano_Linee B,COVID-19,linear,2\n"
        "pocus_videos/linear/label_uncertain,Cov_bolzano_linee B,COVID-19,linear,3\n"
        "pocus_videos/linear/label_uncertain,Cov_bolzano_WL  2,COVID-19,linear,4\n")
    items, rejects = read("pocus", tmp_path)
    assert rejects == []
    got = {Path(i.source_path).name: (i.patient_id, i.extra["label_uncertain"]) for i in items}
    assert got == {"Cov_bolzano_sliding .mpeg": ("1", "yes"), "Cov_bolzano_Linee B .mpeg": ("2", "yes"),
                   "Cov_bolzano_linee B.mpeg": ("3", "yes"), "COV_BOLZANO_WL 2.mpeg": ("4", "yes")}


def test_case_only_match_must_be_unique(tmp_path: Path) -> None:
    (tmp_path / "pocus_videos" / "convex").mkdir(parents=True)
    (tmp_path / "pocus_videos" / "convex" / "COV_X.mp4").write_bytes(b"clip")
    (tmp_path / "dataset_metadata.csv").write_text(
        "Filename,Label,Patient ID / Name\nCov_x,Bacterial pneumonia,1\nCov_X,Viral pneumonia,2\n")
    (item,), _ = read("pocus", tmp_path)
    assert (item.label, item.patient_id, item.extra["metadata_row"]) == ("covid", None, "no")


@pytest.mark.parametrize(("flags", "healthy", "findings"), [
    ("0,0,0,0,0", "0", {}),
    ("0,0,0,0,0", "1", {"lung_b_lines": "absent", "lung_a_lines": "absent", "lung_effusion": "absent",
                        "lung_pleural_line": "smooth", "lung_consolidation": "absent"}),
    ("1,0,0,0,0", "0", {"lung_b_lines": "multiple", "lung_a_lines": "absent", "lung_effusion": "absent",
                        "lung_pleural_line": "smooth", "lung_consolidation": "absent"}),
    (",,,,", "0", {}),
])
def test_all_zero_rows_not_marked_healthy_are_unrated(
    tmp_path: Path, flags: str, healthy: str, findings: dict[str, str]
) -> None:
    (tmp_path / "pocus_videos" / "linear").mkdir(parents=True)
    (tmp_path / "pocus_videos" / "linear" / "Cov_bolzano_WL 2.mpeg").write_bytes(b"clip")
    (tmp_path / "dataset_metadata.csv").write_text(
        "Filename,Label,B-lines,A-lines,Effusion,Pleural line irregularities,Consolidations,Healthy\n"
        f"Cov_bolzano_WL 2,COVID-19,{flags},{healthy}\n")
    (item,), _ = read("pocus", tmp_path)
    assert item.findings == findings
    assert item.extra.get("findings_unrated") == ("yes" if flags == "0,0,0,0,0" and healthy == "0" else None)


def test_probe_folder_found_above_sub_folders(tmp_path: Path) -> None:
    for folder in ("Convex", "linear/label_uncertain", "."):
        (tmp_path / "pocus_videos" / folder).mkdir(parents=True, exist_ok=True)
        (tmp_path / "pocus_videos" / folder / f"Cov-{len(folder)}.gif").write_bytes(b"gif")
    (tmp_path / "dataset_metadata.csv").write_text("Filename,Label\nOther,COVID-19\n")
    items, _ = read("pocus", tmp_path)
    assert {i.source_path: i.view for i in items} == {
        "pocus_videos/Convex/Cov-6.gif": "convex",
        "pocus_videos/linear/label_uncertain/Cov-22.gif": "linear",
        "pocus_videos/Cov-1.gif": None,
    }
    assert [i.source_path for i in items if i.extra.get("label_uncertain")] == [
        "pocus_videos/linear/label_uncertain/Cov-22.gif"]


# --------------------------------------------------------------------------- every suffix decodes

CLIP_FRAMES = 6


def _frames() -> list:
    import numpy as np

    yy, xx = np.mgrid[0:48, 0:64]
    return [((xx * 4 + yy * 2 + 20 * k) % 256).astype(np.uint8) for k in range(CLIP_FRAMES)]


@pytest.mark.parametrize(("suffix", "container", "codec", "fps"), [
    (".mp4", "mp4", "", 10), (".MP4", "mp4", "", 10), (".m4v", "mp4", "", 10),
    (".mov", "mov", "mpeg4", 10), (".avi", "avi", "mpeg4", 10),
    (".mpeg", "mpeg", "mpeg1video", 25), (".mpg", "mpeg", "mpeg1video", 25), (".gif", "gif", "", 10),
])
def test_every_pocus_suffix_is_listed_and_decodes(
    tmp_path: Path, suffix: str, container: str, codec: str, fps: int
) -> None:
    import numpy as np

    from echocaptions.imaging.readers import reader_for
    from echocaptions.synth.layouts import _save_gif, _save_mp4, _save_video

    clip = tmp_path / "pocus_videos" / "convex" / f"Cov_clip 1{suffix}"
    frames = _frames()
    if container == "gif":
        _save_gif(frames, clip, fps)
    elif codec:
        _save_video(frames, clip, container, codec, fps)
    else:
        _save_mp4(frames, clip, fps)
    (tmp_path / "dataset_metadata.csv").write_text("Filename,Label,Probe\nCov_clip 1,COVID-19,convex\n")
    (item,), rejects = read("pocus", tmp_path)
    assert rejects == [] and item.expand and item.label == "covid"
    reader = reader_for(Path(item.path))
    decoded = [np.asarray(reader.read(Path(item.path), k).convert("L"), dtype=float) for k in (0, CLIP_FRAMES - 1)]
    for got, want in zip(decoded, (frames[0], frames[-1]), strict=True):
        assert got.shape == want.shape
        assert np.abs(got - want).mean() < 12
    sampled = [index for index, _ in reader.sample(Path(item.path), fps=fps / 5, max_frames=10)]
    assert sampled == [0, 5]


def test_download_notes_name_the_repository_and_its_scripts() -> None:
    from echocaptions.recipe import load_recipe

    cls = get_source_class("pocus")
    assert "jannisborn/covid19_ultrasound" in cls.download and "data/" in cls.download
    assert "get_and_process_web_data.sh" in cls.download and "parse_butterfly.sh" in cls.download
    paths = {s.path for name in ("lung", "multiorgan") for s in load_recipe(name).sources if s.layout == "pocus"}
    assert paths == {cls.folder}
    assert any("label_uncertain" in q for q in cls.quirks) and any(".mpeg" in q and ".MP4" in q for q in cls.quirks)
    assert any("dataset_metadata.csv" in r for r in cls.required)


def test_short_table_rows_are_read(tmp_path: Path) -> None:
    (tmp_path / "pocus_videos" / "convex").mkdir(parents=True)
    (tmp_path / "pocus_videos" / "convex" / "Reg_Alines-1-90.mov").write_bytes(b"clip")
    (tmp_path / "dataset_metadata.csv").write_text(
        "Filename,Label,Probe,Current location,Healthy\nReg_Alines-1-90,regular\n")
    (item,), rejects = read("pocus", tmp_path)
    assert rejects == [] and (item.label, item.view, item.extra["metadata_row"]) == ("normal", "convex", "yes")
