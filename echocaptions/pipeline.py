"""The build, stage by stage.

    recipe ─► sources (enumerate: metadata only) ─► numbered item shards
          ─► image stage per shard on the executor (resumable)
          ─► curation on small columns: groups, duplicates, splits
          ─► caption stage per shard on the executor (resumable)
          ─► Parquet shards + card + stats + rejects

Everything the build reads ends as a row or as a line in ``rejects.jsonl``;
the counts of each stage are checked against the next, per source. Work in
progress lives in ``OUT/.work``; finished image and caption shards there are
skipped on a rerun, so an interrupted build resumes where it stopped. Only
curation (duplicates and splits over the small columns) and the final
writing of the shards run on the driver.
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

import numpy as np
import pyarrow.parquet as pq

from echocaptions.captions.llm import LLMCaptioner, LLMConfig, LLMServerError
from echocaptions.captions.llm_cache import LLMCache, merge_caches
from echocaptions.captions.policy import CaptionPolicy
from echocaptions.captions.report_stage import ReportStage
from echocaptions.captions.stage import (
    CaptionSetup,
    CaptionTask,
    add_stats,
    caption_done,
    run_caption_shard,
)
from echocaptions.captions.translate import ReportTranslator
from echocaptions.curation.dedup import Candidate, DedupResult, remove_near_duplicates
from echocaptions.curation.neardup import clusters
from echocaptions.curation.splits import RowKey, assign_splits
from echocaptions.executors import ExecutorError, get_executor
from echocaptions.imaging.stage import ImageOptions, ShardTask, done_stats, run_shard
from echocaptions.metrics.tables import diversity_tables
from echocaptions.publish import strategy_configs
from echocaptions.publish.card import render_card
from echocaptions.publish.parquet import SHARD_RE, write_splits
from echocaptions.recipe import ExecutorSpec, Recipe, SourceSpec
from echocaptions.schema import Reject, SourceItem, build_key
from echocaptions.sources.base import Source, SourceError, get_source_class

WORK = ".work"


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


class _NullBar:
    def update(self, n: int = 1) -> None: ...

    def close(self) -> None: ...


def tqdm_progress(quiet: bool) -> ProgressFactory:
    if quiet or os.environ.get("CI") or not sys.stderr.isatty():
        return lambda total, desc: _NullBar()
    from tqdm.auto import tqdm

    return lambda total, desc: tqdm(total=total, desc=desc, unit="shard", dynamic_ncols=True)


# preparation: everything that can fail does so before any work ---------------
@dataclass
class Prepared:
    sources: list[tuple[SourceSpec, Source]]
    policy: CaptionPolicy
    reports: ReportStage
    executor: Any
    out: Path
    skipped: dict[str, str] = field(default_factory=dict)
    setup: CaptionSetup | None = None

    @property
    def llm_unavailable(self) -> str | None:
        """Why an optional LLM tier gives no captions in this build, if it does not."""
        llm_missing = self.policy.llm_missing
        return llm_missing if llm_missing.startswith("LLM server unavailable") else None


def prepare(recipe: Recipe, executor: str | None, workers: int, ray_address: str | None = None) -> Prepared:
    """Check sources, output folder, captions and executor; synthesise the demo phantom."""
    if recipe.synth is not None:
        ensure_phantom(recipe)
    errors: list[str] = []
    sources: list[tuple[SourceSpec, Source]] = []
    skipped: dict[str, str] = {}
    for i, spec in enumerate(recipe.sources):
        where = f"sources[{i}] ({spec.name})"
        try:
            cls = get_source_class(spec.layout)
            source = cls(spec.name, recipe.source_root(spec), spec.options, role=spec.role)
            bad_organs = sorted(set(spec.organs or ()) - set(cls.organs))
            if bad_organs:
                raise SourceError(
                    f"organs {bad_organs} never occur in layout {spec.layout!r}; it holds {list(cls.organs)}"
                )
            source.check()
            sources.append((spec, source))
        except SourceError as exc:
            if spec.optional and not recipe.source_root(spec).exists():
                skipped[spec.name] = f"optional source not found at {recipe.source_root(spec)}"
                continue
            errors.append(f"{where}: {exc}\n    (or point at it: --source {spec.name}=PATH)")
    if errors:
        raise BuildError("\n".join(errors))
    if not sources:
        raise BuildError(f"none of the recipe's sources was found: {skipped}")
    out = recipe.out_dir()
    _check_output_folder(out, [src.root for _, src in sources] + [recipe.resolved_data_root()])
    try:
        policy = CaptionPolicy(
            recipe.captions.policy,
            seed=recipe.seed,
            template_dir=Path(recipe.captions.template_dir) if recipe.captions.template_dir else None,
            template_variants=recipe.captions.template_variants,
        )
        spec = recipe.reports
        llm = None
        if "llm" in recipe.captions.policy or spec.translate:
            try:
                llm = _llm_captioner(recipe, out)
            except LLMServerError as exc:
                if not (recipe.llm and recipe.llm.optional):
                    raise
                policy.llm_missing = f"LLM server unavailable at the start of the build ({exc})"
        translator = ReportTranslator(llm, spec.translate_max_tokens) if spec.translate and llm else None
        report_args = {
            "tokenizer": spec.tokenizer,
            "budget": spec.budget,
            "languages": tuple(spec.languages),
            "sections": {k.upper(): v for k, v in spec.sections.items()},
            "spacy_model": spec.spacy_model,
            "ner": spec.ner,
            "fill_findings": spec.fill_findings,
        }
        reports = ReportStage(**report_args, translator=translator)
        setup = CaptionSetup(
            policy=tuple(recipe.captions.policy),
            seed=recipe.seed,
            template_dir=recipe.captions.template_dir,
            template_variants=recipe.captions.template_variants,
            reports=report_args,
            translate=bool(translator),
            translate_max_tokens=spec.translate_max_tokens,
            llm=llm.config if llm is not None else None,
            llm_with_report=bool(recipe.llm and recipe.llm.with_report),
            llm_missing=policy.llm_missing if policy.llm_missing.startswith("LLM server unavailable") else None,
            llm_cache=str(llm.cache_path) if llm is not None else None,
            publish_reports=recipe.reports.publish,
        )
        runner = get_executor(**executor_options(recipe, executor, workers, ray_address))
    except (ValueError, OSError, RuntimeError) as exc:
        raise BuildError(str(exc)) from exc
    return Prepared(
        sources=sources,
        policy=policy,
        reports=reports,
        executor=runner,
        out=out,
        skipped=skipped,
        setup=setup,
    )


def executor_options(
    recipe: Recipe, executor: str | None, workers: int, ray_address: str | None
) -> dict[str, Any]:
    """The executor and its options: the command line's, else the recipe's, else local.

    A Ray address alone selects the Ray executor.
    """
    spec = recipe.executor or ExecutorSpec()
    name = executor or ("ray" if ray_address else spec.name)
    options: dict[str, Any] = {"name": name, "workers": workers}
    if name == "ray":
        options.update(
            address=ray_address or (spec.address if spec.name == "ray" else None),
            cpus_per_task=spec.cpus_per_task,
            gpus_per_task=spec.gpus_per_task,
            max_retries=spec.max_retries,
        )
    elif ray_address:
        options["address"] = ray_address
    return options


def _llm_captioner(recipe: Recipe, out: Path) -> LLMCaptioner:
    """The LLM tier's client, checked against its server before any work.

    Answers are cached in ``OUT/.cache/llm.sqlite``, so a rerun or a resumed
    build sends nothing that was already answered.
    """
    spec = recipe.llm
    fields = spec.model_dump(exclude={"api_key_env", "with_report", "optional"})
    api_key = os.environ.get(spec.api_key_env, "") if spec.api_key_env else "EMPTY"
    config = LLMConfig(
        **fields,
        api_key=api_key or "EMPTY",
        template_dir=recipe.captions.template_dir,
        ner=recipe.reports.ner,
    )
    captioner = LLMCaptioner(config, cache_path=out / ".cache" / "llm.sqlite")
    captioner.check_server()
    (out / ".cache").mkdir(parents=True, exist_ok=True)
    return captioner


def _check_output_folder(out: Path, inputs: list[Path]) -> None:
    for root in inputs:
        root = root.resolve()
        if out == root or out in root.parents or root in out.parents:
            raise BuildError(
                f"output folder {out} overlaps the input {root}; choose an output folder outside the data"
            )
    if out.is_dir() and any(out.iterdir()) and not ((out / "stats.json").is_file() or (out / WORK).is_dir()):
        raise BuildError(
            f"output folder {out} is not empty and holds no earlier build; choose an empty or new folder"
        )


def ensure_phantom(recipe: Recipe) -> None:
    root = recipe.resolved_data_root()
    if root.is_dir() and any(root.iterdir()):
        return
    from echocaptions.synth import make_phantom

    spec = recipe.synth
    make_phantom(
        root,
        organs=spec.organs,
        per_class=spec.per_class,
        seed=spec.seed,
        size=tuple(spec.size),
        layouts=sorted({s.layout for s in recipe.sources}),
    )


# enumerate ------------------------------------------------------------------
def iter_source_items(
    recipe: Recipe, sources: list[tuple[SourceSpec, Source]], counts: dict[str, Counter]
) -> Iterator[SourceItem | Reject]:
    for spec, source in sources:
        count = counts[spec.name]
        for entry in source.items():
            if isinstance(entry, Reject):
                count["enumerate_rejected"] += 1
            elif recipe.image.drop_burned_in and entry.extra.get("burned_in_annotation"):
                count["enumerate_rejected"] += 1
                entry = source.reject(
                    entry.source_path,
                    "burned-in annotation: the image may show patient data (image.drop_burned_in is true)",
                )
            elif spec.organs and entry.organ not in spec.organs:
                count["not_selected"] += 1
                continue
            elif spec.limit is not None and count["listed"] >= spec.limit:
                count["over_limit"] += 1
                continue
            else:
                count["listed"] += 1
                entry.patient_id = build_key(entry.dataset, entry.patient_id)
                entry.study_id = build_key(entry.dataset, entry.study_id)
            yield entry


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
    tasks = [
        ShardTask(
            index=i,
            items_path=str(path),
            staged_path=str(staged / f"{i:05d}.parquet"),
            rejects_path=str(staged / f"{i:05d}.rejects.jsonl"),
            done_path=str(staged / f"{i:05d}.done"),
            options=options,
        )
        for i, path in enumerate(item_paths)
    ]
    keep = {f"{t.index:05d}" for t in tasks}
    for stale in staged.iterdir():
        if stale.name.lstrip(".").split(".")[0] not in keep:
            stale.unlink()
    return tasks


# build ----------------------------------------------------------------------
def build(
    recipe: Recipe,
    *,
    workers: int = 1,
    executor: str | None = None,
    ray_address: str | None = None,
    quiet: bool = False,
    keep_work: bool = False,
    progress: ProgressFactory | None = None,
) -> BuildResult:
    progress = progress or tqdm_progress(quiet)
    prepared = prepare(recipe, executor, workers, ray_address)
    out = prepared.out
    work = out / WORK
    work.mkdir(parents=True, exist_ok=True)

    counts: dict[str, Counter] = {spec.name: Counter() for spec, _ in prepared.sources}
    item_paths, rejects = write_item_shards(
        iter_source_items(recipe, prepared.sources, counts), work, recipe.output.shard_items
    )
    options = ImageOptions(
        max_side=recipe.image.max_side,
        grayscale=recipe.image.grayscale,
        fps=recipe.video.fps,
        max_frames=recipe.video.max_frames,
        crop_sector=recipe.image.crop_sector,
    )
    tasks = shard_tasks(work, item_paths, options)
    shard_stats: dict[int, dict[str, Any]] = {}
    todo = []
    for task in tasks:
        finished = done_stats(task)
        if finished is None:
            todo.append(task)
        else:
            shard_stats[task.index] = finished
    try:
        bar = progress(len(tasks), "images")
        bar.update(len(tasks) - len(todo))
        try:
            for task, stats_of_shard in prepared.executor.map_unordered(run_shard, todo):
                shard_stats[task.index] = stats_of_shard
                bar.update(1)
        finally:
            bar.close()
        return _curate_caption_write(recipe, prepared, tasks, todo, shard_stats, counts, rejects, progress, keep_work)
    except ExecutorError as exc:
        raise BuildError(str(exc)) from exc
    finally:
        if hasattr(prepared.executor, "close"):
            prepared.executor.close()


def _curate_caption_write(
    recipe: Recipe,
    prepared: Prepared,
    tasks: list[ShardTask],
    todo: list[ShardTask],
    shard_stats: dict[int, dict[str, Any]],
    counts: dict[str, Counter],
    rejects: list[Reject],
    progress: ProgressFactory,
    keep_work: bool,
) -> BuildResult:
    out = prepared.out
    work = out / WORK
    for per_source in shard_stats.values():
        for source, c in per_source.items():
            counts[source].update({f"decode_{k}": v for k, v in c.items()})
    for task in tasks:
        text = Path(task.rejects_path).read_text(encoding="utf-8")
        rejects.extend(Reject(**json.loads(line)) for line in text.splitlines() if line.strip())

    candidates = list(_candidates(tasks))
    repeats = _repeated_ids([c.key for c in candidates])
    dropped: dict[int, str] = dict(repeats)
    unique = [c for pos, c in enumerate(candidates) if pos not in repeats]
    dedup = DedupResult(kept=[c.key for c in unique])
    if recipe.dedup.enabled:
        dedup = remove_near_duplicates(
            unique, recipe.dedup.max_hamming, recipe.dedup.keep, recipe.dedup.keep_label_conflicts
        )
    splits = assign_splits(
        dedup.kept,
        {"train": recipe.splits.train, "validation": recipe.splits.validation, "test": recipe.splits.test},
        seed=recipe.seed,
        respect_official=recipe.splits.respect_official,
    )
    for pos, c in enumerate(candidates):
        if pos not in repeats:
            reason = dedup.dropped.get(c.key.id) or splits.dropped.get(c.key.id)
            if reason:
                dropped[pos] = reason
    for pos, reason in sorted(dropped.items()):
        key = candidates[pos].key
        rejects.append(Reject(key.source, key.where.split(":", 1)[1], reason, stage="curation"))
        counts[key.source]["curation_rejected"] += 1
    keep_positions = set(range(len(candidates))) - set(dropped)
    leakage = leakage_check(
        [c for pos, c in enumerate(candidates) if pos in keep_positions],
        splits.split_of,
        recipe.dedup.max_hamming,
    )
    del candidates, unique

    split_counts = Counter(splits.split_of.values())
    if not split_counts:
        _write_text(out / "rejects.jsonl", _jsonl(sorted(rejects, key=_reject_order)))
        raise BuildError(
            f"no row survived: all {len(rejects)} items were rejected; reasons in {out / 'rejects.jsonl'}"
        )
    stats = _new_stats(recipe, prepared.sources, prepared.skipped)
    caption_tasks = _caption_tasks(work, tasks, keep_positions, splits.split_of, prepared.setup)
    results, captions_run = _run_caption_stage(prepared, caption_tasks, progress)
    texts: list[dict[str, Any]] = []
    report_counts: dict[str, Counter] = defaultdict(Counter)
    for task in caption_tasks:
        result = results.pop(task.index)
        add_stats(stats, result["stats"])
        texts.extend(result["texts"])
        for name, value in result["reports"].items():
            report_counts[name].update({"n": value} if isinstance(value, int) else value)
    tmp_data = work / "data.tmp"
    if tmp_data.exists():
        shutil.rmtree(tmp_data)
    written = write_splits(
        tmp_data, _published_rows(caption_tasks), dict(split_counts), recipe.output.rows_per_shard
    )
    for source, c in counts.items():
        c["kept"] = stats["sources"][source]["kept"]
    _check_accounting(counts)
    tmp_strategies = work / "strategies.tmp"
    if tmp_strategies.exists():
        shutil.rmtree(tmp_strategies)
    strategy_names: list[str] = []
    if recipe.output.strategy_configs:
        strategy_names = strategy_configs.names_for(recipe.captions.policy)
        stats["strategies"] = strategy_configs.write(
            tmp_data, tmp_strategies, strategy_names, recipe.output.strategy_images
        )

    rejects.sort(key=_reject_order)
    split_files = {s: [f"data/{p.name}" for p in w.paths] for s, w in sorted(written.items())}
    _finish_stats(stats, counts, rejects, split_counts, written, splits.groups, len(tasks), len(todo))
    stats["leakage"] = leakage
    stats["near_duplicates"] = {"clusters": dedup.clusters, "label_conflicts": dedup.label_conflicts}
    stats["caption_stage"] = {"shards": len(caption_tasks), "shards_resumed": len(caption_tasks) - captions_run}
    stats["reports"] = {
        "processed": report_counts["processed"]["n"],
        "languages": dict(report_counts["languages"]),
        "phi_removed": dict(report_counts["phi_removed"]),
        "translated": dict(report_counts["translated"]),
    }
    stats["llm_unavailable"] = prepared.llm_unavailable
    stats = _plain(stats)
    tables = diversity_tables(texts)
    del texts
    _publish(out, tmp_data, recipe, stats, split_files, rejects, tables, strategy_names)
    if not keep_work:
        for name in ("staged", "items", "captioned", "llm"):
            shutil.rmtree(work / name, ignore_errors=True)
    return BuildResult(out=out, stats=stats, split_files=split_files)


def _candidates(tasks: list[ShardTask]) -> Iterator[Candidate]:
    """The small columns of every staged row, in staged order."""
    columns = ["id", "frame", "width", "height", "sha256", "phash", "item"]
    for task in tasks:
        table = pq.read_table(task.staged_path, columns=columns).to_pydict()
        for row_id, frame, width, height, sha, phash, item_json in zip(*table.values(), strict=True):
            item = json.loads(item_json)
            key = RowKey(
                id=row_id,
                source=item["source"],
                dataset=item["dataset"],
                role=item["role"],
                sha256=sha,
                patient_id=item.get("patient_id"),
                study_id=item.get("study_id"),
                split_hint=item.get("split_hint"),
                source_path=item["source_path"],
                frame=frame,
                organ=item["organ"],
                label=item.get("label"),
                item_key=f"{item['dataset']}\x1f{item['source_path']}\x1f{item.get('frame')}",
            )
            yield Candidate(key, phash, has_report=bool(item.get("report")), pixels=width * height)


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


def _repeated_ids(keys: list[RowKey]) -> dict[int, str]:
    """Positions of rows whose id (dataset, path, frame) an earlier row already has, with why."""
    first: dict[str, RowKey] = {}
    repeats: dict[int, str] = {}
    for pos, key in enumerate(keys):
        seen = first.setdefault(key.id, key)
        if seen is not key:
            repeats[pos] = f"duplicate id: the same dataset, path and frame as {seen.where}"
    return repeats


def _caption_tasks(
    work: Path,
    tasks: list[ShardTask],
    keep_positions: set[int],
    split_of: dict[str, str],
    setup: CaptionSetup,
) -> list[CaptionTask]:
    """One caption task per staged shard, naming its kept rows by position, with their split."""
    folder = work / "captioned"
    folder.mkdir(parents=True, exist_ok=True)
    (work / "llm").mkdir(exist_ok=True)
    setup_fingerprint = setup.fingerprint()
    caption_tasks = []
    offset = 0
    for task in tasks:
        ids = pq.read_table(task.staged_path, columns=["id"]).column("id").to_pylist()
        keep = tuple(
            (pos, split_of[row_id])
            for pos, row_id in enumerate(ids)
            if offset + pos in keep_positions and row_id in split_of
        )
        offset += len(ids)
        caption_tasks.append(
            CaptionTask(
                index=task.index,
                staged_path=task.staged_path,
                staged_done_path=task.done_path,
                keep=keep,
                out_path=str(folder / f"{task.index:05d}.parquet"),
                done_path=str(folder / f"{task.index:05d}.done"),
                llm_cache_path=str(work / "llm" / f"{task.index:05d}.sqlite"),
                setup=setup,
                setup_fingerprint=setup_fingerprint,
            )
        )
    keep_names = {f"{t.index:05d}" for t in caption_tasks}
    for stale in folder.iterdir():
        if stale.name.lstrip(".").split(".")[0] not in keep_names or stale.name.endswith(".tmp"):
            stale.unlink()
    return caption_tasks


def _run_caption_stage(
    prepared: Prepared, caption_tasks: list[CaptionTask], progress: ProgressFactory
) -> tuple[dict[int, dict[str, Any]], int]:
    """Caption every shard not yet done, on the executor; fold the shards' LLM answers in.

    Returns each shard's result and how many shards ran (the others were done).
    """
    results: dict[int, dict[str, Any]] = {}
    todo = []
    for task in caption_tasks:
        done = caption_done(task)
        if done is None:
            todo.append(task)
        else:
            results[task.index] = done
    setup = prepared.setup
    if setup.llm_cache and Path(setup.llm_cache).is_file():
        base = LLMCache(setup.llm_cache)  # shards read it without locks: no write-ahead log left over
        base.checkpoint()
        base.close()
    bar = progress(len(caption_tasks), "captions")
    bar.update(len(caption_tasks) - len(todo))
    failed = True
    try:
        for task, result in prepared.executor.map_unordered(run_caption_shard, todo, num_cpus=1, num_gpus=0):
            results[task.index] = result
            bar.update(1)
        failed = False
    except LLMServerError as exc:
        cause = getattr(exc, "cause", None) or exc  # a Ray task's error wraps the worker's
        raise BuildError(f"{cause}\nanswers so far are cached; rerun the same command to resume") from exc
    finally:
        bar.close()
        try:
            _fold_llm_caches(setup, [t for t in caption_tasks if t.index in results])
        except (RuntimeError, OSError) as exc:
            if not failed:
                raise BuildError(str(exc)) from exc
            print(f"warning: {exc}", file=sys.stderr)  # the error being raised says more
    return results, len(todo)


def _fold_llm_caches(setup: CaptionSetup, finished: list[CaptionTask]) -> None:
    """Fold the LLM answers of finished caption shards into the build's cache.

    Unfinished shards keep their caches: a worker may still be writing one,
    and the shard's rerun reads it first.
    """
    if not setup.llm_cache:
        return
    caches = [Path(t.llm_cache_path) for t in finished if Path(t.llm_cache_path).is_file()]
    if caches:
        merge_caches(setup.llm_cache, caches)


def _published_rows(caption_tasks: list[CaptionTask]) -> Iterator[dict[str, Any]]:
    """The captioned columns of every kept row joined with its staged image, in shard order."""
    for task in caption_tasks:
        if not task.keep:
            continue
        captioned = pq.read_table(task.out_path).to_pylist()
        wanted = iter(zip((pos for pos, _ in task.keep), captioned, strict=True))
        pos_wanted, row = next(wanted)
        position = -1
        for batch in pq.ParquetFile(task.staged_path).iter_batches(batch_size=64, columns=["id", "image"]):
            for row_id, image in zip(batch.column("id").to_pylist(), batch.column("image").to_pylist(), strict=True):
                position += 1
                if position != pos_wanted:
                    continue
                if row_id != row["id"]:
                    raise BuildError(f"{task.out_path} does not match {task.staged_path}; rerun the build")
                yield {**row, "image": {"bytes": image, "path": None}}
                pos_wanted, row = next(wanted, (None, None))


def _check_accounting(counts: dict[str, Counter]) -> None:
    """Each stage's input equals its rows plus rejects, per source (counted independently)."""
    problems = []
    for source, c in counts.items():
        if c["listed"] != c["decode_items"] + c["decode_rejects"]:
            problems.append(f"{source}: listed {c['listed']} != decoded {c['decode_items']} + rejected {c['decode_rejects']}")
        if c["decode_rows"] != c["kept"] + c["curation_rejected"]:
            problems.append(f"{source}: staged rows {c['decode_rows']} != kept {c['kept']} + rejected {c['curation_rejected']}")
    if problems:
        raise BuildError("item accounting failed (a bug; please report it): " + "; ".join(problems))


def _new_stats(
    recipe: Recipe, sources: list[tuple[SourceSpec, Source]], skipped: dict[str, str]
) -> dict[str, Any]:
    return {
        "recipe": recipe.name,
        "seed": recipe.seed,
        "sources": {
            spec.name: {"layout": spec.layout, "role": spec.role, "license": src.license, "kept": 0, "unlabelled": 0}
            for spec, src in sources
        },
        "skipped_sources": dict(skipped),
        "notices": {spec.name: sorted(src.notices.values()) for spec, src in sources if src.notices},
        "datasets": Counter(),
        "organs": Counter(),
        "labels": Counter(),
        "caption_sources": Counter(),
        "caption_candidates": Counter(),
        "reject_reasons": Counter(),
        "by_split": defaultdict(Counter),
        "class_balance": defaultdict(Counter),
    }


def _finish_stats(
    stats: dict[str, Any],
    counts: dict[str, Counter],
    rejects: list[Reject],
    split_counts: Counter,
    written: dict[str, Any],
    groups: int,
    shards: int,
    shards_run: int,
) -> None:
    for source, c in counts.items():
        extra_frames = c["decode_rows"] - c["decode_items"]
        stats["sources"][source].update(
            {
                "listed": c["listed"] + c["enumerate_rejected"],
                "frames_from_multi_frame_items": extra_frames,
                "read": c["listed"] + c["enumerate_rejected"] + extra_frames,
                "rejected": c["enumerate_rejected"] + c["decode_rejects"] + c["curation_rejected"],
                "not_selected": c["not_selected"],
                "over_limit": c["over_limit"],
            }
        )
    for r in rejects:
        stats["reject_reasons"][r.reason.split(":")[0]] += 1
    stats["rows"] = sum(split_counts.values())
    stats["rejected"] = len(rejects)
    stats["read"] = sum(s["read"] for s in stats["sources"].values())
    stats["empty_sources"] = sorted(name for name, s in stats["sources"].items() if s["read"] == 0)
    stats["splits"] = dict(sorted(split_counts.items()))
    stats["split_bytes"] = {s: w.nbytes for s, w in sorted(written.items())}
    stats["split_download_bytes"] = {
        s: sum(p.stat().st_size for p in w.paths) for s, w in sorted(written.items())
    }
    stats["groups"] = groups
    stats["image_stage"] = {
        "shards": shards,
        "shards_resumed": shards - shards_run,
        "passthrough_png": sum(c["decode_passthrough"] for c in counts.values()),
    }


def _publish(
    out: Path,
    tmp_data: Path,
    recipe: Recipe,
    stats: dict[str, Any],
    split_files: dict[str, list[str]],
    rejects: list[Reject],
    tables: dict[str, Any],
    strategy_names: list[str],
) -> None:
    """Write card, stats, diversity and rejects beside the new shards, then swap everything in."""
    staged = {
        "rejects.jsonl": _jsonl(rejects),
        "stats.json": json.dumps(stats, indent=2, sort_keys=True) + "\n",
        "diversity.json": json.dumps(tables, indent=2, sort_keys=True) + "\n",
        "README.md": render_card(recipe, stats, split_files, tables, strategy_names),
    }
    for name, text in staged.items():
        (out / WORK / f"{name}.tmp").write_text(text, encoding="utf-8")
    data_dir = out / "data"
    data_dir.mkdir(exist_ok=True)
    for old in data_dir.iterdir():
        if SHARD_RE.fullmatch(old.name):
            old.unlink()
    for new in sorted(tmp_data.iterdir()):
        os.replace(new, data_dir / new.name)
    tmp_data.rmdir()
    old_strategies = out / strategy_configs.FOLDER
    if old_strategies.is_dir():
        shutil.rmtree(old_strategies)
    new_strategies = out / WORK / "strategies.tmp"
    if new_strategies.is_dir():
        os.replace(new_strategies, old_strategies)
    for name in staged:
        os.replace(out / WORK / f"{name}.tmp", out / name)


def _reject_order(r: Reject) -> tuple[str, str, str, str]:
    return (r.source, r.path, r.stage, r.reason)


def _jsonl(rejects: list[Reject]) -> str:
    return "".join(json.dumps(r.to_dict(), sort_keys=True) + "\n" for r in rejects)


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in sorted(value.items())}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value
