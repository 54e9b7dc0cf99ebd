"""Near-duplicate clusters keep one row by the recipe's rules; label conflicts are rejected."""

from __future__ import annotations

from echocaptions.curation.dedup import Candidate, remove_near_duplicates
from echocaptions.curation.splits import RowKey


def _c(
    id_: str, phash: int, *, label: str = "benign", role: str = "train", report: bool = False, pixels: int = 100
) -> Candidate:
    key = RowKey(
        id=id_, source=f"s_{role}", dataset="d", role=role, sha256=id_, organ="breast", label=label,
        source_path=f"{id_}.png",
    )
    return Candidate(key, phash, has_report=report, pixels=pixels)


def test_keeper_by_rules() -> None:
    group = [_c("a", 0), _c("b", 1, pixels=400), _c("c", 3, report=True), _c("z", (1 << 40) - 1)]
    result = remove_near_duplicates(group, 4, ["report", "larger"])
    assert [k.id for k in result.kept] == ["c", "z"]
    assert result.dropped["a"] == "duplicate_of:c (near-duplicate of s_train:c.png)"
    assert result.clusters == 1
    larger = remove_near_duplicates(group, 4, ["larger", "report"])
    assert [k.id for k in larger.kept] == ["b", "z"]
    evals = remove_near_duplicates([*group, _c("e", 2, role="eval")], 4, ["eval", "report"])
    assert "e" in [k.id for k in evals.kept]


def test_label_conflict_rejects_the_cluster_unless_kept() -> None:
    group = [_c("a", 0, label="benign"), _c("b", 1, label="malignant"), _c("n", ((1 << 20) - 1) << 30)]
    result = remove_near_duplicates(group, 4, ["first"])
    assert [k.id for k in result.kept] == ["n"]
    assert result.dropped["a"].startswith("label_conflict: near-duplicates labelled benign and malignant")
    assert result.label_conflicts == 1
    kept = remove_near_duplicates(group, 4, ["first"], keep_label_conflicts=True)
    assert [k.id for k in kept.kept] == ["a", "n"]
    assert kept.dropped == {"b": "duplicate_of:a (near-duplicate of s_train:a.png)"}
