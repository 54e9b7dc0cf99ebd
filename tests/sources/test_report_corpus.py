"""Report corpus (R2Gen annotation.json): one item per image, report and uid per record."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from echocaptions.sources import SourceError, get_source_class
from tests.sources.conftest import PER_CLASS, read, reasons


def test_phantom_items(phantom: dict[str, Path], no_pixels: None) -> None:
    root = phantom["report_corpus"]
    items, rejects = read("report_corpus", root)
    assert rejects == []
    annotation = json.loads((root / "annotation.json").read_text())
    records = [r for split in annotation.values() for r in split]
    assert len(records) == 3 * 3 * PER_CLASS
    assert len(items) == sum(len(r["image_path"]) for r in records)
    assert Counter(i.organ for i in items).keys() == {"breast", "thyroid", "liver"}
    assert {i.split_hint for i in items} <= {"train", "validation", "test"}
    by_uid = {str(r["uid"]): r for r in records}
    for item in items:
        record = by_uid[item.study_id]
        assert item.report == record["finding"] and "IMPRESSION:" in item.report
        assert item.label == record["labels"][0]
        assert item.patient_id is None
        assert item.source_path in record["image_path"]
    studies = Counter(i.study_id for i in items)
    assert max(studies.values()) == 2


def test_r2gen_keys_and_single_organ_option(tmp_path: Path) -> None:
    (tmp_path / "images" / "CXR1").mkdir(parents=True)
    (tmp_path / "images" / "CXR1" / "0.png").write_bytes(b"png")
    annotation = {"val": [{"id": "CXR1", "report": "Normal thyroid.", "image_path": ["CXR1/0.png"],
                           "split": "val"}]}
    (tmp_path / "annotation.json").write_text(json.dumps(annotation))
    items, rejects = read("report_corpus", tmp_path, {"images": "images", "organ": "thyroid"})
    assert rejects == []
    (item,) = items
    assert (item.organ, item.study_id, item.report, item.split_hint) == (
        "thyroid", "CXR1", "Normal thyroid.", "validation")
    assert item.source_path == "images/CXR1/0.png" and item.label is None


def test_broken_inputs_become_rejects(broken_phantom: dict[str, Path], no_pixels: None) -> None:
    items, rejects = read("report_corpus", broken_phantom["report_corpus"])
    why = reasons(rejects)
    assert why["breast/9001/0.png"] == "image listed in annotation.json is missing"
    assert why["kidney/9002/0.png"].startswith("organ undecided: ") and "folder 'kidney'" in why["kidney/9002/0.png"]
    assert why["breast/orphan/0.png"] == "not listed in annotation.json"
    assert "breast/9003/0.png" in {i.source_path for i in items}


def test_bad_root_names_layout_and_publisher(tmp_path: Path) -> None:
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "reports.json").write_text("{}")
    for root in (tmp_path / "missing", tmp_path / "corpus"):
        with pytest.raises(SourceError) as err:
            get_source_class("report_corpus")("reports", root).check()
        message = str(err.value)
        assert "'report_corpus'" in message and "annotation.json" in message and "R2Gen" in message


def test_annotation_that_does_not_parse(tmp_path: Path) -> None:
    (tmp_path / "annotation.json").write_text("{not json")
    with pytest.raises(SourceError, match="not valid JSON"):
        read("report_corpus", tmp_path)


# --------------------------------------------------------------------------- the public corpora

BOM = "\ufeff"


def write_corpus(root: Path, splits: dict, images: list[str], text: str | None = None, bom: bool = True) -> Path:
    """An annotation.json (UTF-8 with a byte-order mark, like the public corpora) and placeholder images."""
    for rel in images:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"png")
    body = json.dumps(splits, ensure_ascii=False) if text is None else text
    (root / "annotation.json").write_bytes(((BOM if bom else "") + body).encode("utf-8"))
    return root


ZH_RECORD = {"id": "u1", "report": "甲状腺 右叶 见 一 低回声 结节 ， TI-RADS 4a 类 。", "image_path": ["u1/0.png"],
             "labels": ["甲状腺", "恶性"]}


@pytest.mark.parametrize("bom", [True, False], ids=["bom", "no-bom"])
def test_annotation_read_with_or_without_a_byte_order_mark(tmp_path: Path, bom: bool) -> None:
    root = write_corpus(tmp_path, {"train": [ZH_RECORD]}, ["u1/0.png"], bom=bom)
    assert (root / "annotation.json").read_bytes().startswith(b"\xef\xbb\xbf") == bom
    items, rejects = read("report_corpus", root)
    assert rejects == []
    (item,) = items
    assert (item.organ, item.label, item.study_id, item.report) == ("thyroid", "malignant", "u1", ZH_RECORD["report"])
    assert item.extra["organ_from"] == "label"


@pytest.mark.parametrize(
    ("text", "wanted"),
    [
        ('{"train": [{"id": 1, "image_path": ["a.png"]', ["line 1, column 45", "ends early: download or unpack"]),
        ('{"train": [{"id": 1,, "report": "x"}]}', ["line 1, column 21", "repair the JSON there"]),
        ('[{"id": 1}]', ["must map split names to lists of records (found list)"]),
        ('{"train": {"id": 1}}', ["(found 'train': dict)"]),
    ],
)
def test_annotation_errors_name_file_position_and_fix(tmp_path: Path, text: str, wanted: list[str]) -> None:
    write_corpus(tmp_path, {}, [], text=text)
    with pytest.raises(SourceError) as err:
        read("report_corpus", tmp_path)
    message = str(err.value)
    assert str(tmp_path / "annotation.json") in message
    for part in wanted:
        assert part in message, message


def test_annotation_not_utf8_names_the_byte_and_the_fix(tmp_path: Path) -> None:
    (tmp_path / "annotation.json").write_bytes('{"train": [{"report": "甲状腺"}]}'.encode("gb18030"))
    with pytest.raises(SourceError, match=r"is not UTF-8 \(byte 23: .*iconv -f GB18030 -t UTF-8"):
        read("report_corpus", tmp_path)


@pytest.mark.parametrize(
    ("record", "option", "organ", "rule"),
    [
        ({"organ": "甲状腺", "labels": ["乳腺"]}, "lung", "thyroid", "organ_key"),
        ({"organ": "Breast", "labels": ["thyroid"]}, None, "breast", "organ_key"),
        ({"labels": ["甲状腺结节", "良性"]}, "lung", "thyroid", "label"),
        ({"labels": ["肺"]}, None, "lung", "label"),
        ({"labels": ["hepatic steatosis"]}, None, "liver", "label"),
        ({"labels": ["breast", "thyroid"]}, None, "liver", "folder"),
        ({"labels": ["良性"]}, "breast", "liver", "folder"),
    ],
)
def test_organ_rules_in_order(tmp_path: Path, record: dict, option: str | None, organ: str, rule: str) -> None:
    root = write_corpus(tmp_path, {"train": [{"id": "s1", "image_path": ["liver/s1/0.png"], **record}]},
                        ["liver/s1/0.png"])
    items, rejects = read("report_corpus", root, {"organ": option} if option else None)
    assert rejects == []
    assert [(i.organ, i.extra["organ_from"]) for i in items] == [(organ, rule)]


@pytest.mark.parametrize(("folder", "organ"), [("乳腺", "breast"), ("Thyroid", "thyroid"), ("肝脏", "liver"),
                                               ("lung_us", "lung")])
def test_organ_by_folder_in_english_or_chinese(tmp_path: Path, folder: str, organ: str) -> None:
    rel = f"{folder}/s1/0.png"
    root = write_corpus(tmp_path, {"val": [{"uid": 7, "image_path": rel, "finding": "正常。"}]}, [rel])
    (item,) = read("report_corpus", root)[0]
    assert (item.organ, item.extra["organ_from"], item.source_path) == (organ, "folder", rel)


def test_organ_by_option_last(tmp_path: Path) -> None:
    root = write_corpus(tmp_path, {"test": [{"id": "s1", "image_path": ["s1.png"], "labels": ["正常"]}]}, ["s1.png"])
    (item,) = read("report_corpus", root, {"organ": "breast"})[0]
    assert (item.organ, item.extra["organ_from"], item.label) == ("breast", "option", "normal")


def test_no_rule_gives_an_organ_reject_lists_the_rules(tmp_path: Path) -> None:
    root = write_corpus(tmp_path, {"train": [{"id": "s1", "image_path": ["scans/s1/0.png"], "labels": ["良性"]}]},
                        ["scans/s1/0.png"])
    items, rejects = read("report_corpus", root)
    assert items == []
    (reject,) = rejects
    assert reject.path == "scans/s1/0.png"
    assert reject.reason == (
        "organ undecided: no rule names one of ('breast', 'thyroid', 'liver', 'lung') (organ key: absent; "
        "labels ['良性']: none names an organ; folder 'scans': not an organ name; option organ: not set) "
        "(annotation.json [train][0])"
    )
    assert "set the source option organ" in reject.detail


def test_organ_key_outside_the_vocabulary_is_not_overruled(tmp_path: Path) -> None:
    root = write_corpus(tmp_path, {"train": [{"id": "k", "organ": "肾", "image_path": ["liver/k/0.png"]}]},
                        ["liver/k/0.png"])
    items, rejects = read("report_corpus", root, {"organ": "liver"})
    assert items == [] and rejects[0].reason.startswith(
        "organ outside vocabulary: the record's organ key is '肾', not one of")


def test_chinese_phantom_corpus(phantom: dict[str, Path], no_pixels: None) -> None:
    root = phantom["report_corpus_zh"]
    raw = (root / "annotation.json").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    records = [r for split in json.loads(raw.decode("utf-8-sig")).values() for r in split]
    source = get_source_class("report_corpus")("zh", root)
    entries = list(source.items())
    items = [e for e in entries if not hasattr(e, "reason")]
    assert len(entries) == len(items) == sum(len(r["image_path"]) for r in records)
    rules = {(i.organ, i.extra["organ_from"]) for i in items}
    assert rules == {("breast", "organ_key"), ("thyroid", "label"), ("liver", "folder")}
    by_id = {r["id"]: r for r in records}
    for item in items:
        record = by_id[item.study_id]
        assert item.report == record["report"] and "超声" in item.report
        assert item.label in {"normal", "benign", "malignant"}
    assert sum("超声 所见 ：" in r["report"] for r in records) >= len(records) // 4
    assert any("超声所见：" in r["report"] for r in records)
    rules_used = Counter(i.extra["organ_from"] for i in items)
    assert (f"organ_key {rules_used['organ_key']}, label {rules_used['label']}, folder {rules_used['folder']}"
            in source.notices["organ_from"])


def test_chinese_phantom_broken_record(broken_phantom: dict[str, Path], no_pixels: None) -> None:
    items, rejects = read("report_corpus", broken_phantom["report_corpus_zh"])
    why = reasons(rejects)
    assert list(why) == ["images/9101/0.png"] and why["images/9101/0.png"].startswith("organ undecided: ")
