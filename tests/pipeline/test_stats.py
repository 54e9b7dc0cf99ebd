"""Typed stats merge themselves, survive their plain form, and lay out stats.json."""

from __future__ import annotations

import json
from collections import Counter

from echocaptions.stats import (
    CaptionStats,
    CurationStats,
    EnumerateStats,
    ImageStats,
    ReportStats,
    SourceInfo,
    StageTime,
    build_stats,
    check_accounting,
    without_timings,
)


def _caption_shard(split: str, label: str | None, source: str = "busi") -> CaptionStats:
    stats = CaptionStats()
    stats.count(source, "BUSI", "breast", label, split, "template", ["template", "report"])
    return stats


def test_shard_stats_add_up_in_any_order_and_through_their_plain_form() -> None:
    shards = [_caption_shard("train", "benign"), _caption_shard("test", None), _caption_shard("train", "benign")]
    forward = CaptionStats.total(shards)
    backward = CaptionStats.total(json.loads(json.dumps(s.to_dict())) for s in reversed(shards))
    assert forward.to_dict() == backward.to_dict()
    assert forward.kept == Counter(busi=3) and forward.unlabelled == Counter(busi=1)
    assert forward.by_split["train"] == Counter(busi=2)
    assert forward.class_balance["test"] == Counter({"breast/unlabelled": 1})
    assert forward.caption_candidates == Counter(template=3, report=3)
    reports = ReportStats(processed=2, languages=Counter(en=2)).merge({"processed": 1, "languages": {"zh": 1}})
    assert reports.to_dict() == {"languages": {"en": 2, "zh": 1}, "phi_removed": {}, "processed": 3, "translated": {}}


def test_accounting_names_the_source_whose_counts_disagree() -> None:
    listed = EnumerateStats()
    for _ in range(3):
        listed.count("a", "listed")
    images = ImageStats.from_dict({"by_source": {"a": {"items": 2, "rejects": 1, "rows": 2}}})
    curation = CurationStats(rejected=Counter(a=1))
    captions = _caption_shard("train", "x", source="a")
    assert check_accounting(listed, images, curation, captions) == []
    captions.kept["a"] = 5
    assert check_accounting(listed, images, curation, captions) == ["a: staged rows 2 != kept 5 + rejected 1"]
    images.by_source["a"]["rejects"] = 0
    assert check_accounting(listed, images, curation, captions)[0] == "a: listed 3 != decoded 2 + rejected 0"


def test_stats_json_keeps_its_keys_and_only_the_timings_differ_between_runs() -> None:
    listed = EnumerateStats()
    listed.count("a", "listed")
    listed.count("a", "enumerate_rejected")
    kwargs = dict(
        recipe="r",
        seed=0,
        sources={"a": SourceInfo("busi", "train", "CC BY 4.0", ["note b", "note a"])},
        skipped={},
        enumerated=listed,
        images=ImageStats.from_dict({"by_source": {"a": {"items": 1, "rows": 3, "passthrough": 1}}}),
        curation=CurationStats(groups=2),
        captions=CaptionStats.total([_caption_shard("train", "x")] * 3),
        reports=ReportStats(),
        reject_reasons=["unreadable image"],
        splits={"train": 3},
        split_bytes={"train": 10},
        split_download_bytes={"train": 20},
        leakage={"patients_across_splits": 0},
        shards={"images": (2, 1), "captions": (2, 0)},
        llm_unavailable=None,
        strategies=None,
    )
    one = build_stats(**kwargs, stages={"images": StageTime(2.0, 4)})
    two = build_stats(**kwargs, stages={"images": StageTime(3.0, 4)})
    assert one["stages"] == {"images": {"items": 4, "items_per_second": 2.0, "wall_seconds": 2.0}}
    assert one != two and without_timings(one) == without_timings(two)
    assert without_timings(one)["stages"] == {"images": {"items": 4}}
    assert one["sources"]["a"] == {
        "layout": "busi", "role": "train", "license": "CC BY 4.0", "kept": 0, "unlabelled": 0, "listed": 2,
        "frames_from_multi_frame_items": 2, "read": 4, "rejected": 1, "not_selected": 0, "over_limit": 0,
    }
    assert one["notices"] == {"a": ["note a", "note b"]}
    assert one["image_stage"] == {"shards": 2, "shards_resumed": 1, "passthrough_png": 1}
    assert one["rejected"] == 1 and one["reject_reasons"] == {"unreadable image": 1}
    assert list(one) == sorted(one) and "strategies" not in one
