"""TN3K: official train-val / test split kept, labels from label4*.csv, masks attached."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from echocaptions.schema import Reject, SourceItem
from echocaptions.sources import Source, SourceError, get_source_class
from echocaptions.sources.tn3k import read_labels
from echocaptions.synth.layout_tn3k import write_tn3k
from echocaptions.synth.layouts import _Ctx
from tests.sources.conftest import PER_CLASS, SIZE, read, reasons


def listed(root: Path) -> tuple[list[SourceItem], list[Reject], dict[str, str]]:
    """Items, rejects and notices of one TN3K source."""
    source: Source = get_source_class("tn3k")("tn3k", root)
    source.check()
    entries = list(source.items())
    items = [e for e in entries if isinstance(e, SourceItem)]
    return items, [e for e in entries if isinstance(e, Reject)], source.notices


def test_phantom_items(phantom: dict[str, Path], no_pixels: None) -> None:
    items, rejects = read("tn3k", phantom["tn3k"])
    assert rejects == []
    per_split = Counter((i.split_hint, i.label) for i in items)
    assert per_split == {(s, lab): PER_CLASS for s in ("train", "test") for lab in ("benign", "malignant")}
    for item in items:
        folder = "trainval" if item.split_hint == "train" else "test"
        name = Path(item.source_path).name
        assert item.source_path == f"{folder}-image/{name}"
        assert item.extra["masks"] == [f"{folder}-mask/{name}"]
        assert item.patient_id is None and item.findings == {} and item.organ == "thyroid"
        assert item.license == "research use; cite Gong et al. 2023"
    assert len({i.id for i in items}) == len(items)  # test numbering restarts: ids still differ


def test_phantom_labels_match_the_label_files(phantom: dict[str, Path]) -> None:
    root = phantom["tn3k"]
    items, rejects, notices = listed(root)
    assert rejects == [] and notices == {}
    for split, hint in (("trainval", "train"), ("test", "test")):
        lines = dict(line.split(",") for line in (root / f"label4{split}.csv").read_text().splitlines())
        assert all(re.fullmatch(r"\d{4}\.jpg", name) for name in lines)  # no header line
        got = {Path(i.source_path).name: i.label for i in items if i.split_hint == hint}
        assert got == {name: {"0": "benign", "1": "malignant"}[v] for name, v in lines.items()}


def test_trfe_net_download_alone_loads_unlabelled_with_one_notice(tmp_path: Path) -> None:
    ctx = _Ctx(seed=3, size=SIZE, per_class=PER_CLASS, broken=False, organs=("thyroid",))
    root = write_tn3k(tmp_path / "TN3K", ctx, labels=False)
    assert not list(root.glob("label4*.csv")) and (root / "trainval-image").is_dir()
    items, rejects, notices = listed(root)
    assert rejects == []
    assert len(items) == len(list(root.glob("*-image/*.jpg"))) == 2 * 2 * PER_CLASS
    assert {i.label for i in items} == {None} and not any(i.extra["labelled"] for i in items)
    assert list(notices) == ["tn3k_labels"]
    message = notices["tn3k_labels"]
    assert "label4trainval.csv and label4test.csv" in message
    assert "github.com/chenghui-666/ACL" in message and "TRFE-Net" in message
    (root / "label4test.csv").write_text("0000.jpg,1\n")  # one file present: only the other is named
    _, _, notices = listed(root)
    assert "label4trainval.csv not found" in notices["tn3k_labels"]
    assert "label4test.csv" not in notices["tn3k_labels"].split(" not found")[0]


def test_label_values_outside_vocabulary_and_unused_lines(tmp_path: Path) -> None:
    root = tmp_path / "tn3k"
    (root / "trainval-image").mkdir(parents=True)
    for name in ("0000.jpg", "0001.jpg", "0002.jpg"):
        (root / "trainval-image" / name).write_bytes(b"jpg")
    (root / "label4trainval.csv").write_text("0000.jpg,malignant\n0001.jpg,maybe\n0002.jpg,-1\n0009.jpg,0\n")
    items, rejects, notices = listed(tmp_path)
    assert [(i.source_path, i.label) for i in items] == [("trainval-image/0000.jpg", "malignant")]
    why = reasons(rejects)
    assert why == {
        "trainval-image/0001.jpg": "label outside vocabulary: 'maybe' for 0001.jpg in label4trainval.csv; "
                                   "expected 0 (benign), 1 (malignant), benign or malignant",
        "trainval-image/0002.jpg": "label outside vocabulary: '-1' for 0002.jpg in label4trainval.csv; "
                                   "expected 0 (benign), 1 (malignant), benign or malignant",
    }
    assert "1 line(s) of label4trainval.csv name no image" in notices["tn3k_unused_label4trainval.csv"]
    assert "label4test.csv" not in " ".join(notices.values())  # no test-image/ folder: nothing missing


def test_class_attributes_say_where_and_what() -> None:
    cls = get_source_class("tn3k")
    assert "TRFE-Net" in cls.download and "ACL" in cls.download and "TNCD" in cls.download
    assert cls.folder.startswith("TN3K")
    assert any("label4trainval.csv" in o and "unlabelled" in o for o in cls.optional)
    assert any("TNCD" in q for q in cls.quirks) and cls.grouping_note


def test_label_files_are_read_tolerantly(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("img_name,label\n0000.jpg,0\n1,1\n0002,1.0\n")
    assert read_labels(tmp_path / "a.csv") == {"0000": "0", "1": "1", "0002": "1"}
    root = tmp_path / "tn3k"
    for folder in ("trainval-image", "test-image"):
        (root / folder).mkdir(parents=True)
    for name in ("0000.jpg", "0001.jpg", "0002.jpg"):
        (root / "trainval-image" / name).write_bytes(b"jpg")
    (root / "test-image" / "0000.jpg").write_bytes(b"jpg")
    (root / "label4trainval.csv").write_text("img_name,label\n0000.jpg,0\n1,1\n0002,1.0\n")
    items, rejects = read("tn3k", tmp_path)
    assert rejects == []
    assert [(i.source_path, i.label, i.split_hint) for i in items] == [
        ("trainval-image/0000.jpg", "benign", "train"), ("trainval-image/0001.jpg", "malignant", "train"),
        ("trainval-image/0002.jpg", "malignant", "train"), ("test-image/0000.jpg", None, "test")]
    assert items[-1].extra["labelled"] is False


def test_broken_inputs_become_rejects(broken_phantom: dict[str, Path], no_pixels: None) -> None:
    items, rejects = read("tn3k", broken_phantom["tn3k"])
    n = 2 * PER_CLASS
    why = reasons(rejects)
    assert why[f"trainval-image/{n:04d}.jpg"] == "image without its label4trainval.csv line"
    assert why[f"trainval-image/{n + 1:04d}.jpg"].startswith("label outside vocabulary: '2'")
    assert why["trainval-image/Thumbs.db"].startswith("unknown extension")
    assert why[f"test-mask/{n:04d}.jpg"] == "mask without its image"
    assert why[f"trainval-mask/{n:04d}.jpg"] == why[f"trainval-mask/{n + 1:04d}.jpg"] == "mask of a rejected image"
    assert f"test-image/{n + 1:04d}.jpg" in {i.source_path for i in items}  # truncated: the decoder rejects it
    root = broken_phantom["tn3k"]
    files = {p.relative_to(root).as_posix() for p in root.glob("*/*")}
    assert files == {i.source_path for i in items} | {m for i in items for m in i.extra["masks"]} | set(why)


@pytest.mark.parametrize("make", ["missing", "empty", "wrong"])
def test_bad_root_names_layout_and_publisher(tmp_path: Path, make: str) -> None:
    root = tmp_path / "TN3K"
    if make != "missing":
        root.mkdir()
    if make == "wrong":
        (root / "images").mkdir()
        (root / "images" / "0000.jpg").write_bytes(b"jpg")
    with pytest.raises(SourceError) as err:
        get_source_class("tn3k")("tn3k", root).check()
    message = str(err.value)
    assert "'tn3k'" in message and "label4trainval.csv" in message and "Gong" in message
