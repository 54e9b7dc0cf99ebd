"""The build, stage by stage.

    recipe ─► sources (enumerate: metadata only) ─► numbered item shards
          ─► image stage per shard on the executor (resumable)
          ─► curation on small columns: groups, duplicates, splits
          ─► captions by policy ─► Parquet shards + card + stats + rejects

Everything the build reads ends as a row or as a line in ``rejects.jsonl``.
Work in progress lives in ``OUT/.work``; finished shards there are skipped
on a rerun, so an interrupted build resumes where it stopped.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from echocaptions.captions.policy import CaptionPolicy
from echocaptions.curation.splits import RowKey, assign_splits
from echocaptions.executors import get_executor
from echocaptions.imaging.stage import ImageOptions, ShardTask, is_done, run_shard
from echocaptions.publish.card import render_card
from echocaptions.publish.parquet import write_splits
from echocaptions.recipe import Recipe
from echocaptions.schema import Caption, Record, Reject, SourceItem, record_to_row
from echocaptions.sources.base import Source, SourceError, get_source_class


class BuildError(RuntimeError):
    """A build that cannot start or finish; the message says what to do."""


@dataclass
class BuildResult:
    out: Path
    stats: dict[str, Any]
    split_files: dict[str, list[str]] = field(default_factory=dict)

    @property
    def rejects_path(self) -> Path:
        return self.out / "rejects.jsonl"


ProgressFactory = Callable[[int, str], Any]


def _null_progress(total: int, desc: str):
    class _Bar:
        def update(self, n: int = 1) -> None: ...
        def close(self) -> None: ...

    return _Bar()


def tqdm_progress(quiet: bool) -> ProgressFactory:
    if quiet or os.environ.get("CI") or not sys.stderr.isatty():
        return _null_progress
    from tqdm.auto import tqdm

    return lambda total, desc: tqdm(total=total, desc=desc, unit="shard", dynamic_ncols=True)


# sources --------------------------------------------------------------------
def open_sources(recipe: Recipe) -> list[Source]:
    """Instantiate and check every source before any work (synthesising the demo phantom)."""
    if recipe.synth is not None:
        ensure_phantom(recipe)
    sources = []
    for spec in recipe.sources:
        cls = get_source_class(spec.layout)
        source = cls(spec.name, recipe.source_root(spec), spec.options, role=spec.role)
        source.check()
        sources.append(source)
    return sources


def ensure_phantom(recipe: Recipe) -> None:
    root = recipe.resolved_data_root()
    if root.is_dir() and any(root.iterdir()):
        return
    from echocaptions.synth import make_phantom

    spec = recipe.synth
    make_phantom(root, organs=spec.organs, per_class=spec.per_class, seed=spec.seed, size=tuple(spec.size))


def iter_source_items(recipe: Recipe, sources: list[Source], counters: Counter) -> Iterator[SourceItem | Reject]:
    for spec, source in zip(recipe.sources, sources, strict=True):
        taken = 0
        for entry in source.items():
            if isinstance(entry, SourceItem):
                if spec.organs and entry.organ not in spec.organs:
                    counters[f"{spec.name}:not_selected"] += 1
                    continue
                if spec.limit is not None and taken >= spec.limit:
                    counters[f"{spec.name}:over_limit"] += 1
                    continue
                taken += 1
            yield entry


# enumerate ------------------------------------------------------------------
def write_item_shards(
    items: Iterator[SourceItem | Reject], work: Path, shard_items: int
) -> tuple[list[Path], list[Reject]]:
    """Stream items into ``items/NNNNN.jsonl`` shards; return shard paths and enumeration rejects."""
    folder = work / "items"
    folder.mkdir(parents=True, exist_ok=True)
    rejects: list[Reject] = []
    paths: list[Path] = []
    lines: list[str] = []

    def flush() -> None:
        path = folder / f"{len(paths):05d}.jsonl"
        text = "".join(lines)
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
        paths.append(path)
        lines.clear()

    for entry in items:
        if isinstance(entry, Reject):
            rejects.append(entry)
            continue
        lines.append(json.dumps(entry.to_dict(), sort_keys=True, ensure_ascii=False) + "\n")
        if len(lines) >= shard_items:
            flush()
    if lines:
        flush()
    keep = {p.name for p in paths}
    for stale in folder.glob("*.jsonl"):
        if stale.name not in keep:
            stale.unlink()
    return paths, rejects


def shard_tasks(work: Path, item_paths: list[Path], options: ImageOptions) -> list[ShardTask]:
    staged = work / "staged"
    staged.mkdir(parents=True, exist_ok=True)
    tasks = []
    for i, path in enumerate(item_paths):
        stem = f"{i:05d}"
        tasks.append(
            ShardTask(
                index=i,
                items_path=str(path),
                staged_path=str(staged / f"{stem}.parquet"),
                rejects_path=str(staged / f"{stem}.rejects.jsonl"),
                done_path=str(staged / f"{stem}.done"),
                options=options,
            )
        )
    keep = {f"{t.index:05d}" for t in tasks}
    for stale in staged.iterdir():
        if stale.name.split(".")[0] not in keep:
            stale.unlink()
    return tasks


# build ----------------------------------------------------------------------
def build(
    recipe: Recipe,
    *,
    workers: int = 1,
    executor: str = "local",
    quiet: bool = False,
    keep_work: bool = False,
    progress: ProgressFactory | None = None,
) -> BuildResult:
    progress = progress or tqdm_progress(quiet)
    try:
        sources = open_sources(recipe)
    except SourceError as exc:
        raise BuildError(str(exc)) from exc
    out = recipe.out_dir()
    work = out / ".work"
    work.mkdir(parents=True, exist_ok=True)

    counters: Counter = Counter()
    item_paths, rejects = write_item_shards(
        iter_source_items(recipe, sources, counters), work, recipe.output.shard_items
    )
    options = ImageOptions(
        max_side=recipe.image.max_side,
        grayscale=recipe.image.grayscale,
        fps=recipe.video.fps,
        max_frames=recipe.video.max_frames,
    )
    tasks = shard_tasks(work, item_paths, options)
    todo = [t for t in tasks if not is_done(t)]
    image_stats: Counter = Counter()
    bar = progress(len(tasks), "images")
    bar.update(len(tasks) - len(todo))
    try:
        for _task, shard_stats in get_executor(executor, workers).map_unordered(run_shard, todo):
            image_stats.update(shard_stats)
            bar.update(1)
    finally:
        bar.close()

    for task in tasks:
        rejects.extend(
            Reject(**json.loads(line))
            for line in Path(task.rejects_path).read_text(encoding="utf-8").splitlines()
            if line.strip()
        )

    keys = list(_row_keys(tasks))
    splits = assign_splits(
        keys,
        {"train": recipe.splits.train, "validation": recipe.splits.validation, "test": recipe.splits.test},
        seed=recipe.seed,
        respect_official=recipe.splits.respect_official,
    )
    source_of = {k.id: (k.source, k.dataset) for k in keys}
    for row_id, reason in sorted(splits.dropped.items()):
        source, _ = source_of[row_id]
        rejects.append(Reject(source=source, path=row_id, reason=reason, stage="curation"))
    del keys

    policy = CaptionPolicy(
        recipe.captions.policy,
        seed=recipe.seed,
        keep_reports=recipe.keep_reports,
        template_dir=Path(recipe.captions.template_dir) if recipe.captions.template_dir else None,
    )
    counts = Counter(splits.split_of.values())
    stats = _new_stats(recipe, sources, counters)
    tmp_data = work / "data.tmp"
    if tmp_data.exists():
        shutil.rmtree(tmp_data)
    written = write_splits(
        tmp_data,
        _published_rows(tasks, splits.split_of, policy, recipe.keep_reports, stats),
        dict(counts),
        recipe.output.rows_per_shard,
    )
    data_dir = out / "data"
    if data_dir.exists():
        shutil.rmtree(data_dir)
    os.replace(tmp_data, data_dir)
    split_files = {s: [f"data/{p.name}" for p in w.paths] for s, w in written.items()}

    rejects.sort(key=lambda r: (r.source, r.path, r.stage, r.reason))
    for r in rejects:
        stats["sources"][r.source]["rejected"] += 1
        stats["reject_reasons"][r.reason.split(":")[0]] += 1
    for s in stats["sources"].values():
        s["read"] = s["kept"] + s["rejected"]
    stats["rows"] = sum(counts.values())
    stats["rejected"] = len(rejects)
    stats["read"] = stats["rows"] + stats["rejected"]
    stats["splits"] = dict(sorted(counts.items()))
    stats["split_bytes"] = {s: w.nbytes for s, w in sorted(written.items())}
    stats["split_download_bytes"] = {
        s: sum(p.stat().st_size for p in (data_dir / Path(f).name for f in files))
        for s, files in sorted(split_files.items())
    }
    stats["groups"] = splits.groups
    stats["image_stage"] = {
        "shards": len(tasks),
        "shards_resumed": len(tasks) - len(todo),
        "passthrough_png": image_stats.get("passthrough", 0),
    }
    _write_text(out / "rejects.jsonl", "".join(json.dumps(r.to_dict(), sort_keys=True) + "\n" for r in rejects))
    stats = _plain(stats)
    _write_text(out / "stats.json", json.dumps(stats, indent=2, sort_keys=True) + "\n")
    _write_text(out / "README.md", render_card(recipe, stats, split_files))
    if not keep_work:
        shutil.rmtree(work / "staged", ignore_errors=True)
        shutil.rmtree(work / "items", ignore_errors=True)
    return BuildResult(out=out, stats=stats, split_files=split_files)


def _row_keys(tasks: list[ShardTask]) -> Iterator[RowKey]:
    for task in tasks:
        table = pq.read_table(task.staged_path, columns=["id", "sha256", "item"])
        for row_id, sha, item_json in zip(
            table.column("id").to_pylist(),
            table.column("sha256").to_pylist(),
            table.column("item").to_pylist(),
            strict=True,
        ):
            item = json.loads(item_json)
            yield RowKey(
                id=row_id,
                source=item["source"],
                dataset=item["dataset"],
                role=item["role"],
                sha256=sha,
                patient_id=item.get("patient_id"),
                study_id=item.get("study_id"),
                split_hint=item.get("split_hint"),
            )


def _published_rows(
    tasks: list[ShardTask],
    split_of: dict[str, str],
    policy: CaptionPolicy,
    keep_reports: bool,
    stats: dict[str, Any],
) -> Iterator[dict[str, Any]]:
    for task in tasks:
        parquet = pq.ParquetFile(task.staged_path)
        for batch in parquet.iter_batches(batch_size=64):
            for row in batch.to_pylist():
                split = split_of.get(row["id"])
                if split is None:
                    continue
                item = SourceItem.from_dict(json.loads(row["item"]))
                caption, caption_source, captions, meta = policy.choose(row["id"], item)
                record = Record(
                    id=row["id"],
                    image=row["image"],
                    organ=item.organ,
                    dataset=item.dataset,
                    source_path=item.source_path,
                    width=row["width"],
                    height=row["height"],
                    sha256=row["sha256"],
                    split=split,
                    frame=row["frame"],
                    view=item.view,
                    patient_id=item.patient_id,
                    study_id=item.study_id,
                    label=item.label,
                    findings=item.findings,
                    report=item.report if keep_reports else None,
                    caption=caption,
                    caption_source=caption_source,
                    captions=captions,
                    caption_meta=meta,
                    license=item.license,
                )
                _count(stats, item, record, captions)
                yield record_to_row(record)


def _count(stats: dict[str, Any], item: SourceItem, record: Record, captions: list[Caption]) -> None:
    stats["sources"][item.source]["kept"] += 1
    stats["datasets"][item.dataset] += 1
    stats["organs"][item.organ] += 1
    stats["labels"][f"{item.organ}/{item.label or 'unlabelled'}"] += 1
    stats["caption_sources"][record.caption_source] += 1
    for c in captions:
        stats["caption_candidates"][c.source] += 1
    stats["by_split"][record.split][item.source] += 1


def _new_stats(recipe: Recipe, sources: list[Source], counters: Counter) -> dict[str, Any]:
    per_source = {
        spec.name: {
            "layout": spec.layout,
            "role": spec.role,
            "license": src.license,
            "kept": 0,
            "rejected": 0,
            "not_selected": counters.get(f"{spec.name}:not_selected", 0),
            "over_limit": counters.get(f"{spec.name}:over_limit", 0),
        }
        for spec, src in zip(recipe.sources, sources, strict=True)
    }
    return {
        "recipe": recipe.name,
        "seed": recipe.seed,
        "sources": per_source,
        "datasets": Counter(),
        "organs": Counter(),
        "labels": Counter(),
        "caption_sources": Counter(),
        "caption_candidates": Counter(),
        "reject_reasons": Counter(),
        "by_split": defaultdict(Counter),
    }


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in sorted(value.items())}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
