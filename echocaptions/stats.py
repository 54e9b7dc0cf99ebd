"""Typed stats: each stage keeps its own counts, and counts merge themselves.

A stage's shards each return a stats object (or its plain form, which a done
marker records); the driver adds them up with :meth:`Counts.merge`, so the
stage's total does not depend on how many workers ran it or in which order
shards finished. :func:`build_stats` lays the stages' totals out as
``stats.json``; every stage also gets its wall time and items per second
under ``stages`` (like datatrove's stats). Those two numbers are the only ones
that differ between two runs of the same recipe: :func:`without_timings`
drops them where builds are compared.

:func:`check_accounting` checks that each stage's input equals its rows plus
its rejects, per source, from counts each stage kept on its own.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, TypeVar

C = TypeVar("C", bound="Counts")

TIMING_KEYS = ("wall_seconds", "items_per_second")


def _by_key() -> defaultdict[str, Counter]:
    return defaultdict(Counter)


class Counts:
    """Dataclass mixin: fields are ints, Counters or ``{key: Counter}``, and merge by addition."""

    def merge(self: C, other: C | Mapping[str, Any]) -> C:
        """Add ``other`` (the same type, or its :meth:`to_dict` form) into this one; returns self."""
        if isinstance(other, Mapping):
            other = type(self).from_dict(other)
        for f in fields(self):  # type: ignore[arg-type]
            mine, theirs = getattr(self, f.name), getattr(other, f.name)
            if isinstance(mine, Counter):
                mine.update(theirs)
            elif isinstance(mine, dict):
                for key, counts in theirs.items():
                    mine[key].update(counts)
            else:
                setattr(self, f.name, mine + theirs)
        return self

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form, keys sorted."""
        return {f.name: plain(getattr(self, f.name)) for f in fields(self)}  # type: ignore[arg-type]

    @classmethod
    def from_dict(cls: type[C], data: Mapping[str, Any]) -> C:
        out = cls()
        for f in fields(out):  # type: ignore[arg-type]
            value = data.get(f.name)
            if value is None:
                continue
            mine = getattr(out, f.name)
            if isinstance(mine, Counter):
                mine.update(value)
            elif isinstance(mine, dict):
                for key, counts in value.items():
                    mine[key].update(counts)
            else:
                setattr(out, f.name, value)
        return out

    @classmethod
    def total(cls: type[C], parts: Iterable[C | Mapping[str, Any]]) -> C:
        out = cls()
        for part in parts:
            out.merge(part)
        return out


@dataclass
class EnumerateStats(Counts):
    """Per source: items listed, rejected while listing, not selected (organs), over the limit."""

    by_source: defaultdict[str, Counter] = field(default_factory=_by_key)
    reports: int = 0  # listed items that come with a report

    def count(self, source: str, what: str) -> None:
        self.by_source[source][what] += 1


@dataclass
class ImageStats(Counts):
    """Per source: items decoded into at least one row, rows (frames included), rejects, PNGs passed through."""

    by_source: defaultdict[str, Counter] = field(default_factory=_by_key)

    @property
    def items(self) -> int:
        """Items the stage read: decoded or rejected."""
        return sum(c["items"] + c["rejects"] for c in self.by_source.values())

    @property
    def passthrough(self) -> int:
        return sum(c["passthrough"] for c in self.by_source.values())


@dataclass
class CurationStats(Counts):
    """Rows curation rejected per source, the split groups and the near-duplicate clusters."""

    rejected: Counter = field(default_factory=Counter)
    rows: int = 0  # staged rows curation looked at
    groups: int = 0
    clusters: int = 0
    label_conflicts: int = 0


@dataclass
class CaptionStats(Counts):
    """What the caption stage published, counted per shard."""

    kept: Counter = field(default_factory=Counter)
    unlabelled: Counter = field(default_factory=Counter)
    datasets: Counter = field(default_factory=Counter)
    organs: Counter = field(default_factory=Counter)
    labels: Counter = field(default_factory=Counter)
    caption_sources: Counter = field(default_factory=Counter)
    caption_candidates: Counter = field(default_factory=Counter)
    by_split: defaultdict[str, Counter] = field(default_factory=_by_key)
    class_balance: defaultdict[str, Counter] = field(default_factory=_by_key)

    def count(
        self, source: str, dataset: str, organ: str, label: str | None, split: str,
        caption_source: str, candidate_sources: Iterable[str],
    ) -> None:
        """One published row."""
        key = f"{organ}/{label or 'unlabelled'}"
        self.kept[source] += 1
        if label is None:
            self.unlabelled[source] += 1
        self.datasets[dataset] += 1
        self.organs[organ] += 1
        self.labels[key] += 1
        self.caption_sources[caption_source] += 1
        for name in candidate_sources:
            self.caption_candidates[name] += 1
        self.by_split[split][source] += 1
        self.class_balance[split][key] += 1

    @property
    def rows(self) -> int:
        return sum(self.kept.values())


@dataclass
class ReportStats(Counts):
    """Reports processed, by language; PHI removed by kind; reports translated by language."""

    processed: int = 0
    languages: Counter = field(default_factory=Counter)
    phi_removed: Counter = field(default_factory=Counter)
    translated: Counter = field(default_factory=Counter)


@dataclass(frozen=True)
class StageTime:
    """How long a stage took and how many items it handled."""

    wall_seconds: float
    items: int

    def to_dict(self) -> dict[str, Any]:
        rate = self.items / self.wall_seconds if self.wall_seconds > 0 else 0.0
        return {"items": self.items, "wall_seconds": round(self.wall_seconds, 3), "items_per_second": round(rate, 1)}


@dataclass
class SourceInfo:
    """What stats.json says of a source besides its counts."""

    layout: str
    role: str
    license: str | None
    notices: list[str] = field(default_factory=list)


def check_accounting(
    enumerated: EnumerateStats, images: ImageStats, curation: CurationStats, captions: CaptionStats
) -> list[str]:
    """Each stage's input equals its rows plus rejects, per source (counted independently); the problems."""
    problems = []
    for source, listing in sorted(enumerated.by_source.items()):
        decoded = images.by_source.get(source, Counter())
        if listing["listed"] != decoded["items"] + decoded["rejects"]:
            problems.append(
                f"{source}: listed {listing['listed']} != decoded {decoded['items']} + rejected {decoded['rejects']}"
            )
        kept, dropped = captions.kept[source], curation.rejected[source]
        if decoded["rows"] != kept + dropped:
            problems.append(f"{source}: staged rows {decoded['rows']} != kept {kept} + rejected {dropped}")
    return problems


def build_stats(
    *,
    recipe: str,
    seed: int,
    sources: Mapping[str, SourceInfo],
    skipped: Mapping[str, str],
    enumerated: EnumerateStats,
    images: ImageStats,
    curation: CurationStats,
    captions: CaptionStats,
    reports: ReportStats,
    reject_reasons: Iterable[str],
    splits: Mapping[str, int],
    split_bytes: Mapping[str, int],
    split_download_bytes: Mapping[str, int],
    leakage: Mapping[str, int],
    shards: Mapping[str, tuple[int, int]],
    llm_unavailable: str | None,
    strategies: Mapping[str, Any] | None,
    stages: Mapping[str, StageTime],
) -> dict[str, Any]:
    """``stats.json``: the stages' totals laid out for readers (card, report, exports), keys sorted.

    ``shards`` is ``{stage: (shards, shards resumed)}`` for the per-shard stages;
    ``stages`` the time of each step so far (see :func:`stage_table`).
    """
    per_source: dict[str, dict[str, Any]] = {}
    for name, info in sources.items():
        listing = enumerated.by_source.get(name, Counter())
        decoded = images.by_source.get(name, Counter())
        listed = listing["listed"] + listing["enumerate_rejected"]
        extra_frames = decoded["rows"] - decoded["items"]
        per_source[name] = {
            "layout": info.layout,
            "role": info.role,
            "license": info.license,
            "kept": captions.kept[name],
            "unlabelled": captions.unlabelled[name],
            "listed": listed,
            "frames_from_multi_frame_items": extra_frames,
            "read": listed + extra_frames,
            "rejected": listing["enumerate_rejected"] + decoded["rejects"] + curation.rejected[name],
            "not_selected": listing["not_selected"],
            "over_limit": listing["over_limit"],
        }
    image_shards, image_resumed = shards["images"]
    caption_shards, caption_resumed = shards["captions"]
    stats: dict[str, Any] = {
        "recipe": recipe,
        "seed": seed,
        "sources": per_source,
        "skipped_sources": dict(skipped),
        "notices": {name: sorted(info.notices) for name, info in sources.items() if info.notices},
        "datasets": captions.datasets,
        "organs": captions.organs,
        "labels": captions.labels,
        "caption_sources": captions.caption_sources,
        "caption_candidates": captions.caption_candidates,
        "reject_reasons": Counter(reject_reasons),
        "by_split": captions.by_split,
        "class_balance": captions.class_balance,
        "rows": sum(splits.values()),
        "read": sum(s["read"] for s in per_source.values()),
        "empty_sources": sorted(name for name, s in per_source.items() if s["read"] == 0),
        "splits": dict(splits),
        "split_bytes": dict(split_bytes),
        "split_download_bytes": dict(split_download_bytes),
        "groups": curation.groups,
        "image_stage": {"shards": image_shards, "shards_resumed": image_resumed, "passthrough_png": images.passthrough},
        "leakage": dict(leakage),
        "near_duplicates": {"clusters": curation.clusters, "label_conflicts": curation.label_conflicts},
        "caption_stage": {"shards": caption_shards, "shards_resumed": caption_resumed},
        "reports": {
            "processed": reports.processed,
            "languages": reports.languages,
            "phi_removed": reports.phi_removed,
            "translated": reports.translated,
        },
        "llm_unavailable": llm_unavailable,
        "stages": stage_table(stages),
    }
    stats["rejected"] = sum(stats["reject_reasons"].values())
    if strategies is not None:
        stats["strategies"] = strategies
    return plain(stats)


def stage_table(stages: Mapping[str, StageTime]) -> dict[str, dict[str, Any]]:
    """``stats.json``'s ``stages``: per step, its items, wall seconds and items per second."""
    return {name: time.to_dict() for name, time in sorted(stages.items())}


def without_timings(stats: Mapping[str, Any]) -> dict[str, Any]:
    """``stats`` without the numbers that differ between two runs of the same build (wall times, rates)."""
    out = dict(stats)
    if isinstance(out.get("stages"), Mapping):
        out["stages"] = {
            name: {k: v for k, v in stage.items() if k not in TIMING_KEYS} for name, stage in out["stages"].items()
        }
    return out


def plain(value: Any) -> Any:
    """JSON-able copy: dicts (Counters included) with string keys in sorted order, lists kept."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in sorted(value.items())}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value
