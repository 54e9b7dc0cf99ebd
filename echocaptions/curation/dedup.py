"""Near-duplicate removal across all sources of a build.

Rows whose perceptual hashes are within the recipe's Hamming distance form a
cluster (see :mod:`neardup`). Each cluster keeps one row, chosen by the
recipe's rules in order (``eval``: a held-out source first, so evaluation sets
stay whole; ``report``: a row with a report; ``larger``: more pixels;
``first``: smallest id); the others are rejected as ``duplicate_of:<id>``. A
cluster whose members disagree on the label (the same lesion filed as benign
and malignant) is rejected whole as ``label_conflict`` unless the recipe
keeps such clusters.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field, replace

import numpy as np

from echocaptions.curation.neardup import clusters
from echocaptions.curation.splits import RowKey


@dataclass(frozen=True, slots=True)
class Candidate:
    key: RowKey
    phash: int
    has_report: bool = False
    pixels: int = 0


@dataclass
class DedupResult:
    kept: list[RowKey] = field(default_factory=list)
    dropped: dict[str, str] = field(default_factory=dict)
    clusters: int = 0
    label_conflicts: int = 0


def _rank(candidate: Candidate, rules: list[str]) -> tuple:
    values: list[object] = []
    for rule in rules:
        if rule == "eval":
            values.append(candidate.key.role != "eval")
        elif rule == "report":
            values.append(not candidate.has_report)
        elif rule == "larger":
            values.append(-candidate.pixels)
    return (*values, candidate.key.id)


def remove_near_duplicates(
    candidates: list[Candidate],
    max_hamming: int,
    rules: list[str],
    keep_label_conflicts: bool = False,
) -> DedupResult:
    result = DedupResult()
    if not candidates:
        return result
    labels = clusters(np.array([c.phash for c in candidates], dtype=np.int64), max_hamming)
    members: dict[int, list[Candidate]] = defaultdict(list)
    for label, candidate in zip(labels.tolist(), candidates, strict=True):
        members[label].append(candidate)
    for label, group in members.items():
        if len(group) == 1:
            result.kept.append(group[0].key)
            continue
        result.clusters += 1
        classes = sorted({c.key.label for c in group if c.key.label is not None})
        if len(classes) > 1 and not keep_label_conflicts:
            result.label_conflicts += 1
            names = ", ".join(sorted(c.key.where for c in group))
            for c in group:
                result.dropped[c.key.id] = (
                    f"label_conflict: near-duplicates labelled {' and '.join(classes)} ({names})"
                )
            continue
        keeper = min(group, key=lambda c: _rank(c, rules))
        result.kept.append(replace(keeper.key, cluster=label))
        for c in group:
            if c is not keeper:
                result.dropped[c.key.id] = f"duplicate_of:{keeper.key.id} (near-duplicate of {keeper.key.where})"
    result.kept.sort(key=lambda k: k.id)
    return result
