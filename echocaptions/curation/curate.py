"""Curation of a build: which staged rows are published, and in which split.

It runs on the driver over the small columns of every staged row (ids,
hashes, sizes and the listed item; never the pixels), in staged order:

1. a row whose id (dataset, path, frame) an earlier row already has is rejected;
2. near-duplicates across all sources are removed when the recipe says so
   (:mod:`echocaptions.curation.dedup`);
3. the rest are split without leaks (:mod:`echocaptions.curation.splits`);
4. a leakage check counts what still spans two splits (patients, identical
   pixels, near-duplicate clusters: all 0 in a correct build).

Every row that is not kept becomes a reject with its reason; the result
names the kept rows of each staged shard by position, with their split,
which is what the caption stage reads.
"""

from __future__ import annotations

import json
import sys
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow.parquet as pq

from echocaptions.curation.dedup import Candidate, DedupResult, remove_near_duplicates
from echocaptions.curation.neardup import clusters
from echocaptions.curation.splits import RowKey, assign_splits
from echocaptions.imaging.stage import SMALL_COLUMNS
from echocaptions.recipe import DedupSpec, SplitSpec
from echocaptions.schema import Reject
from echocaptions.stats import CurationStats


@dataclass
class Curated:
    """What curation decided."""

    keep: list[tuple[tuple[int, str], ...]]  # per staged shard: (row position, split) of each kept row
    rejects: list[Reject]  # in staged order
    splits: Counter  # kept rows per split
    leakage: dict[str, int]
    stats: CurationStats = field(default_factory=CurationStats)


def read_candidates(staged_paths: Sequence[str]) -> tuple[list[Candidate], list[int]]:
    """The small columns of every staged row, in staged order, and the number of rows of each shard."""
    candidates: list[Candidate] = []
    sizes: list[int] = []
    for path in staged_paths:
        before = len(candidates)
        candidates.extend(_candidates(path))
        sizes.append(len(candidates) - before)
    return candidates, sizes


def _candidates(staged_path: str) -> Iterator[Candidate]:
    table = pq.read_table(staged_path, columns=SMALL_COLUMNS).to_pydict()
    common = sys.intern  # one copy of each source, dataset, role, organ and label name, not one per row
    for row_id, frame, width, height, sha, phash, item_json in zip(*table.values(), strict=True):
        item = json.loads(item_json)
        label = item.get("label")
        key = RowKey(
            id=row_id,
            source=common(item["source"]),
            dataset=common(item["dataset"]),
            role=common(item["role"]),
            sha256=sha,
            patient_id=item.get("patient_id"),
            study_id=item.get("study_id"),
            split_hint=item.get("split_hint"),
            source_path=item["source_path"],
            frame=frame,
            organ=common(item["organ"]),
            label=common(label) if label is not None else None,
            item_key=f"{item['dataset']}\x1f{item['source_path']}\x1f{item.get('frame')}",
        )
        yield Candidate(key, phash, has_report=bool(item.get("report")), pixels=width * height)


def curate(staged_paths: Sequence[str], dedup: DedupSpec, splits: SplitSpec, seed: int) -> Curated:
    """Curate the staged shards ``staged_paths``; see the module docstring."""
    candidates, sizes = read_candidates(staged_paths)
    repeats = repeated_ids([c.key for c in candidates])
    dropped: dict[int, str] = dict(repeats)
    unique = [c for pos, c in enumerate(candidates) if pos not in repeats]
    deduped = DedupResult(kept=[c.key for c in unique])
    if dedup.enabled:
        deduped = remove_near_duplicates(unique, dedup.max_hamming, dedup.keep, dedup.keep_label_conflicts)
    split = assign_splits(
        deduped.kept,
        {"train": splits.train, "validation": splits.validation, "test": splits.test},
        seed=seed,
        respect_official=splits.respect_official,
    )
    for pos, c in enumerate(candidates):
        if pos not in repeats:
            reason = deduped.dropped.get(c.key.id) or split.dropped.get(c.key.id)
            if reason:
                dropped[pos] = reason
    stats = CurationStats(rows=len(candidates), groups=split.groups, clusters=deduped.clusters,
                          label_conflicts=deduped.label_conflicts)
    rejects = []
    for pos, reason in sorted(dropped.items()):
        key = candidates[pos].key
        rejects.append(Reject(key.source, key.where.split(":", 1)[1], reason, stage="curation"))
        stats.rejected[key.source] += 1
    kept = [c for pos, c in enumerate(candidates) if pos not in dropped]
    leakage = leakage_check(kept, split.split_of, dedup.max_hamming)
    keep: list[tuple[tuple[int, str], ...]] = []
    offset = 0
    for size in sizes:
        keep.append(
            tuple(
                (pos, split.split_of[candidates[offset + pos].key.id])
                for pos in range(size)
                if offset + pos not in dropped and candidates[offset + pos].key.id in split.split_of
            )
        )
        offset += size
    return Curated(keep=keep, rejects=rejects, splits=Counter(split.split_of.values()), leakage=leakage, stats=stats)


def leakage_check(kept: list[Candidate], split_of: dict[str, str], max_hamming: int) -> dict[str, int]:
    """Patients, identical images and near-duplicate clusters that span two splits (all 0)."""
    spans: dict[str, dict[str, set[str]]] = {"patients": defaultdict(set), "sha256": defaultdict(set)}
    for c in kept:
        split = split_of[c.key.id]
        if c.key.patient_id:
            spans["patients"][c.key.patient_id].add(split)
        spans["sha256"][c.key.sha256].add(split)
    labels = clusters(np.array([c.phash for c in kept], dtype=np.int64), max_hamming)
    by_cluster: dict[int, set[str]] = defaultdict(set)
    for label, c in zip(labels.tolist(), kept, strict=True):
        by_cluster[label].add(split_of[c.key.id])
    return {
        "patients_across_splits": sum(len(v) > 1 for v in spans["patients"].values()),
        "identical_images_across_splits": sum(len(v) > 1 for v in spans["sha256"].values()),
        "near_duplicate_clusters_across_splits": sum(len(v) > 1 for v in by_cluster.values()),
        "max_hamming": max_hamming,
    }


def repeated_ids(keys: list[RowKey]) -> dict[int, str]:
    """Positions of rows whose id (dataset, path, frame) an earlier row already has, with why."""
    first: dict[str, RowKey] = {}
    repeats: dict[int, str] = {}
    for pos, key in enumerate(keys):
        seen = first.setdefault(key.id, key)
        if seen is not key:
            repeats[pos] = f"duplicate id: the same dataset, path and frame as {seen.where}"
    return repeats
