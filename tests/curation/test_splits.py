"""Split assignment keeps patients, studies and identical pixels in one split."""

from __future__ import annotations

from collections import Counter

from echocaptions.curation.splits import RowKey, assign_splits

FRACTIONS = {"train": 0.8, "validation": 0.1, "test": 0.1}


def _rows(n: int, patients: int) -> list[RowKey]:
    return [
        RowKey(id=f"r{i:04d}", source="s", dataset="d", role="train", sha256=f"h{i}", patient_id=f"p{i % patients}")
        for i in range(n)
    ]


def test_patients_stay_together_and_fractions_hold() -> None:
    result = assign_splits(_rows(3000, 600), FRACTIONS, seed=0)
    by_patient: dict[str, set[str]] = {}
    for i in range(3000):
        by_patient.setdefault(f"p{i % 600}", set()).add(result.split_of[f"r{i:04d}"])
    assert all(len(s) == 1 for s in by_patient.values())
    counts = Counter(result.split_of.values())
    assert abs(counts["train"] / 3000 - 0.8) < 0.06
    assert counts["validation"] > 0 and counts["test"] > 0


def test_identical_pixels_join_groups_and_duplicates_are_dropped() -> None:
    rows = [
        RowKey(id="a", source="s", dataset="d", role="train", sha256="same", patient_id="p1", source_path="a.png"),
        RowKey(
            id="b", source="s", dataset="d", role="train", sha256="same", patient_id="p2", source_path="b.png", frame=2
        ),
        RowKey(id="c", source="s", dataset="d", role="train", sha256="other", patient_id="p2"),
    ]
    result = assign_splits(rows, FRACTIONS, seed=3)
    assert result.dropped == {"b": "duplicate: identical pixels to s:a.png"}
    assert rows[1].where == "s:b.png frame 2"
    assert result.split_of["a"] == result.split_of["c"]
    assert result.groups == 1


def test_seed_changes_assignment_but_is_deterministic() -> None:
    rows = _rows(500, 500)
    a = assign_splits(rows, FRACTIONS, seed=0).split_of
    assert a == assign_splits(list(reversed(rows)), FRACTIONS, seed=0).split_of
    assert a != assign_splits(rows, FRACTIONS, seed=1).split_of


def test_official_splits_and_eval_sources() -> None:
    rows = [
        RowKey(id="t1", source="s", dataset="d", role="train", sha256="1", study_id="u1", split_hint="test"),
        RowKey(id="t2", source="s", dataset="d", role="train", sha256="2", study_id="u1", split_hint="train"),
        RowKey(id="e1", source="held", dataset="h", role="eval", sha256="3"),
        RowKey(id="x1", source="s", dataset="d", role="train", sha256="3"),
    ]
    result = assign_splits(rows, FRACTIONS, seed=0)
    assert result.split_of["t1"] == result.split_of["t2"] == "test"
    assert result.split_of["e1"] == "eval_held"
    assert "x1" not in result.split_of
    assert result.dropped["x1"].startswith("leak:")
    ignored = assign_splits(rows, FRACTIONS, seed=0, respect_official=False)
    assert ignored.split_of["t1"] == ignored.split_of["t2"]
