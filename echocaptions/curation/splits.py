"""Leak-proof, label-stratified split assignment over the small columns of a build.

Rows are joined into groups when they share a patient, a study, a listed
item (frames of one video), identical pixels or a near-duplicate cluster
(union-find). A group goes to one split
only: the held-out split of an eval source, an official split when the layout
has one, otherwise a split drawn per stratum (organ and label): the stratum's
groups are ordered by a seeded hash and cut at the recipe's fractions by
cumulative size, so every label is spread over the splits in proportion.
Exact pixel duplicates inside a group keep the first row by id; the rest
become rejects, and rows of train sources that share a group with a held-out
eval source are rejected too (they would leak).
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass, field

SPLIT_ORDER = ("train", "validation", "test")
HINT_PRIORITY = {"test": 2, "validation": 1, "train": 0}
EVAL_PREFIX = "eval_"  # held-out sources of a recipe (role: eval) publish as split eval_<source>


@dataclass(frozen=True, slots=True)
class RowKey:
    id: str
    source: str
    dataset: str
    role: str
    sha256: str
    patient_id: str | None = None
    study_id: str | None = None
    split_hint: str | None = None
    source_path: str = ""
    frame: int | None = None
    organ: str = ""
    label: str | None = None
    cluster: int | None = None
    item_key: str = ""  # the listed item a row came from: frames of one video share it

    @property
    def where(self) -> str:
        """The row's file (and frame), for messages."""
        frame = "" if self.frame is None else f" frame {self.frame}"
        return f"{self.source}:{self.source_path}{frame}"


@dataclass
class SplitResult:
    split_of: dict[str, str] = field(default_factory=dict)
    dropped: dict[str, str] = field(default_factory=dict)  # id -> reason
    groups: int = 0


class _UnionFind:
    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, x: str) -> str:
        parent = self.parent.setdefault(x, x)
        while parent != x:
            grand = self.parent.setdefault(parent, parent)
            self.parent[x] = grand
            x, parent = parent, grand
        return x

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            lo, hi = sorted((ra, rb))
            self.parent[hi] = lo


def eval_split_name(source: str) -> str:
    return f"{EVAL_PREFIX}{source}"


def _unit(seed: int, key: str) -> float:
    digest = hashlib.sha256(f"{seed}\x1f{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def group_rows(rows: list[RowKey]) -> dict[str, list[RowKey]]:
    """Groups of rows that must share a split, keyed by a canonical root."""
    uf = _UnionFind()
    for row in rows:
        node = f"row:{row.id}"
        uf.union(node, f"sha:{row.sha256}")
        if row.item_key:
            uf.union(node, f"item:{row.item_key}")
        if row.patient_id:
            uf.union(node, f"patient:{row.dataset}:{row.patient_id}")
        if row.study_id:
            uf.union(node, f"study:{row.dataset}:{row.study_id}")
        if row.cluster is not None:
            uf.union(node, f"cluster:{row.cluster}")
    members: dict[str, list[RowKey]] = defaultdict(list)
    for row in rows:
        members[uf.find(f"row:{row.id}")].append(row)
    for group in members.values():
        group.sort(key=lambda r: r.id)
    return members


def assign_splits(
    rows: list[RowKey],
    fractions: dict[str, float],
    seed: int,
    respect_official: bool = True,
) -> SplitResult:
    members = group_rows(rows)
    result = SplitResult(groups=len(members))
    split_of_group: dict[str, str] = {}
    free: dict[tuple[str, str], list[str]] = defaultdict(list)
    for root, group in members.items():
        eval_sources = sorted({r.source for r in group if r.role == "eval"})
        hints = [r.split_hint for r in group if r.split_hint in HINT_PRIORITY]
        if eval_sources:
            split_of_group[root] = eval_split_name(eval_sources[0])
            for r in group:
                if r.source != eval_sources[0]:
                    result.dropped[r.id] = (
                        f"leak: shares a patient, study or pixels with held-out source {eval_sources[0]!r}"
                    )
        elif respect_official and hints:
            split_of_group[root] = max(hints, key=HINT_PRIORITY.__getitem__)
        else:
            free[(group[0].organ, group[0].label or "")].append(root)
    for stratum in sorted(free):
        roots = sorted(free[stratum], key=lambda root: (_unit(seed, root), root))
        total = sum(len(members[root]) for root in roots)
        done = 0
        for root in roots:
            size = len(members[root])
            split_of_group[root] = _draw(fractions, (done + size / 2) / total)
            done += size
    for root, group in members.items():
        seen_sha: dict[str, RowKey] = {}
        for r in group:
            if r.id in result.dropped:
                continue
            if r.sha256 in seen_sha:
                result.dropped[r.id] = f"duplicate: identical pixels to {seen_sha[r.sha256].where}"
                continue
            seen_sha[r.sha256] = r
            result.split_of[r.id] = split_of_group[root]
    return result


def _draw(fractions: dict[str, float], u: float) -> str:
    edge = 0.0
    for name in SPLIT_ORDER:
        edge += fractions.get(name, 0.0)
        if u < edge:
            return name
    return next(name for name in reversed(SPLIT_ORDER) if fractions.get(name, 0.0) > 0)
