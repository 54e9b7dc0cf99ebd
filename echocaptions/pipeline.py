"""The build: recipe in, published dataset folder out.

    recipe ─► prepare: sources, captions and executor checked before any work
          ─► enumerate: sources list their items (metadata only) ─► item shards
          ─► image stage, per shard on the executor      (echocaptions.imaging.stage)
          ─► curation on the small columns: duplicates, splits, leakage (echocaptions.curation.curate)
          ─► caption stage, per shard on the executor    (echocaptions.captions.stage)
          ─► publish: Parquet shards, strategy configs, card, stats, rejects (echocaptions.publish)

:func:`build` is that flow. The per-shard stages are objects run by one
driver (:mod:`echocaptions.driver`), which owns which shards are done, resume,
stale files, progress and the executor; work in progress lives in
``OUT/.work``, so an interrupted build resumes where it stopped. Everything
the build reads ends as a row or as a line in ``rejects.jsonl``; each stage
keeps its own typed counts (:mod:`echocaptions.stats`), checked against the
next stage's per source, and its wall time goes to ``stats.json``.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from echocaptions.captions.llm.client import LLMCaptioner, LLMConfig, LLMServerError
from echocaptions.captions.stage import (
    CaptionSetup,
    CaptionStage,
    captioned_schema,
    make_policy,
    make_report_stage,
    published_rows,
    run_caption_shard,
    totals,
)
from echocaptions.curation.curate import Curated, curate
from echocaptions.driver import ProgressFactory, StageError, StageRun, Stopwatch, run_stage
from echocaptions.executors import Executor, ExecutorError, get_executor
from echocaptions.imaging.stage import ImageOptions, ImageStage, ShardTask, read_rejects, run_shard
from echocaptions.io import write_text
from echocaptions.metrics.tables import diversity_tables
from echocaptions.publish import strategy_configs
from echocaptions.publish.card import render_card
from echocaptions.publish.folder import (
    CARD,
    DIVERSITY,
    REJECTS,
    STATS,
    WORK_DIR,
    swap_in,
    write_shards,
)
from echocaptions.recipe import ExecutorSpec, Recipe, SourceSpec
from echocaptions.schema import Reject, SourceItem, build_key
from echocaptions.sources.base import Source, SourceError, get_source_class
from echocaptions.stats import (
    EnumerateStats,
    ImageStats,
    SourceInfo,
    build_stats,
    check_accounting,
    stage_table,
)

# Modules a worker imports before decoding: the source adapters, which register the
# image readers of their formats (HDF5 frames, MAT files) when imported.
READER_MODULES = ("echocaptions.sources",)
# The modules of the per-shard stages: a cluster's workers must import them.
STAGE_MODULES = ("echocaptions.imaging.stage", "echocaptions.captions.stage", *READER_MODULES)


class BuildError(RuntimeError):
    """A build that cannot start or finish; the message says what to do."""


@dataclass
class BuildResult:
    out: Path
    stats: dict[str, Any]
    split_files: dict[str, list[str]] = field(default_factory=dict)

    @property
    def rejects_path(self) -> Path:
        return self.out / REJECTS


# the build --------------------------------------------------------------------
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
    """Build ``recipe`` into its output folder; see the module docstring."""
    progress = progress or tqdm_progress(quiet)
    prepared = prepare(recipe, executor, workers, ray_address)
    work = prepared.out / WORK_DIR
    clock = Stopwatch()
    try:
        with prepared.executor as runner:
            listed = enumerate_items(recipe, prepared, work, clock)
            image_stage = ImageStage(work, ImageOptions.of(recipe.image, recipe.video), READER_MODULES, run_shard)
            caption_stage = CaptionStage(work, prepared.setup, run_caption_shard, reports=listed.stats.reports > 0)
            runner.warm_up(caption_stage.modules)  # loaded for the caption workers while images are decoded
            staged = image_stage.plan(listed.paths)
            images = run_stage(image_stage, staged, runner, progress, clock)
            curated = curate_rows(recipe, prepared, staged, listed, clock)
            caption_tasks = caption_stage.plan(staged, curated.keep)
            captions = run_stage(caption_stage, caption_tasks, runner, progress, clock)
        rejects = all_rejects(listed, staged, curated)
        rows = published_rows(caption_tasks)
        result = publish(recipe, prepared, listed, images, curated, captions, rows, rejects, clock)
    except (ExecutorError, StageError) as exc:
        raise BuildError(str(exc)) from exc
    if not keep_work:
        for name in ("staged", "items", "captioned", "llm"):
            shutil.rmtree(work / name, ignore_errors=True)
    return result


# preparation: everything that can fail does so before any work ---------------
@dataclass
class Prepared:
    sources: list[tuple[SourceSpec, Source]]
    setup: CaptionSetup
    executor: Executor
    out: Path
    skipped: dict[str, str] = field(default_factory=dict)


def prepare(recipe: Recipe, executor: str | None, workers: int, ray_address: str | None = None) -> Prepared:
    """Check sources, output folder, captions and executor; synthesise the demo phantom."""
    if recipe.synth is not None:
        ensure_phantom(recipe)
    sources, skipped = _open_sources(recipe)
    out = recipe.out_dir()
    _check_output_folder(out, [src.root for _, src in sources] + [recipe.resolved_data_root()])
    try:
        make_policy(recipe.captions, recipe.seed)  # templates load, or the build stops here
        llm, unavailable = None, None
        if "llm" in recipe.captions.policy or recipe.reports.translate:
            try:
                llm = _llm_captioner(recipe, out)
            except LLMServerError as exc:
                if not (recipe.llm and recipe.llm.optional):
                    raise
                unavailable = f"LLM server unavailable at the start of the build ({exc})"
        make_report_stage(recipe.reports)  # tokenizer, NER and section names are usable
        setup = CaptionSetup(
            captions=recipe.captions,
            reports=recipe.reports,
            seed=recipe.seed,
            llm=llm.config if llm is not None else None,
            llm_with_report=bool(recipe.llm and recipe.llm.with_report),
            llm_missing=unavailable,
            llm_cache=str(llm.cache_path) if llm is not None else None,
            schema=captioned_schema(),
        )
        runner = get_executor(**executor_options(recipe, executor, workers, ray_address), worker_modules=STAGE_MODULES)
    except (ValueError, OSError, RuntimeError) as exc:
        raise BuildError(str(exc)) from exc
    return Prepared(sources=sources, setup=setup, executor=runner, out=out, skipped=skipped)


def _open_sources(recipe: Recipe) -> tuple[list[tuple[SourceSpec, Source]], dict[str, str]]:
    """Each source's adapter, checked; optional sources that are not there are skipped, with why."""
    errors: list[str] = []
    sources: list[tuple[SourceSpec, Source]] = []
    skipped: dict[str, str] = {}
    for i, spec in enumerate(recipe.sources):
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
            errors.append(f"sources[{i}] ({spec.name}): {exc}\n    (or point at it: --source {spec.name}=PATH)")
    if errors:
        raise BuildError("\n".join(errors))
    if not sources:
        raise BuildError(f"none of the recipe's sources was found: {skipped}")
    return sources, skipped


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
    if out.is_dir() and any(out.iterdir()) and not ((out / STATS).is_file() or (out / WORK_DIR).is_dir()):
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
@dataclass
class Listed:
    """What enumeration gave: numbered item shards, the items it rejected, its counts."""

    paths: list[Path]
    rejects: list[Reject]
    stats: EnumerateStats


def enumerate_items(recipe: Recipe, prepared: Prepared, work: Path, clock: Stopwatch) -> Listed:
    """List every source's items (no pixels decoded) into ``items/NNNNN.jsonl`` shards."""
    started = clock.now()
    stats = EnumerateStats()
    paths, rejects = write_item_shards(
        iter_source_items(recipe, prepared.sources, stats), work, recipe.output.shard_items
    )
    clock.record("enumerate", started, sum(c["listed"] + c["enumerate_rejected"] for c in stats.by_source.values()))
    return Listed(paths, rejects, stats)


def iter_source_items(
    recipe: Recipe, sources: list[tuple[SourceSpec, Source]], stats: EnumerateStats
) -> Iterator[SourceItem | Reject]:
    for spec, source in sources:
        count = stats.by_source[spec.name]
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
                stats.reports += bool(entry.report and entry.report.strip())
                entry.patient_id = build_key(entry.dataset, entry.patient_id)
                entry.study_id = build_key(entry.dataset, entry.study_id)
            yield entry


def write_item_shards(
    items: Iterator[SourceItem | Reject], work: Path, shard_items: int
) -> tuple[list[Path], list[Reject]]:
    """Stream items into ``items/NNNNN.jsonl`` shards; return shard paths and enumeration rejects.

    A shard whose text has not changed is not rewritten, so its files keep
    their times and the image stage's fingerprints of them still match.
    """
    folder = work / "items"
    folder.mkdir(parents=True, exist_ok=True)
    rejects: list[Reject] = []
    paths: list[Path] = []
    lines: list[str] = []

    def flush() -> None:
        path = folder / f"{len(paths):05d}.jsonl"
        text = "".join(lines)
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            write_text(path, text)
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


# curation -----------------------------------------------------------------------
def curate_rows(
    recipe: Recipe, prepared: Prepared, staged: list[ShardTask], listed: Listed, clock: Stopwatch
) -> Curated:
    """Curation of the staged rows; a build where no row survives stops here, its rejects written."""
    started = clock.now()
    curated = curate([t.staged_path for t in staged], recipe.dedup, recipe.splits, recipe.seed)
    clock.record("curation", started, curated.stats.rows)
    if not curated.splits:
        rejects = all_rejects(listed, staged, curated)
        write_text(prepared.out / REJECTS, _jsonl(rejects))
        raise BuildError(
            f"no row survived: all {len(rejects)} items were rejected; reasons in {prepared.out / REJECTS}"
        )
    return curated


# publish ------------------------------------------------------------------------
def publish(
    recipe: Recipe,
    prepared: Prepared,
    listed: Listed,
    images: StageRun,
    curated: Curated,
    captions: StageRun,
    rows: Iterator[dict[str, Any]],
    rejects: list[Reject],
    clock: Stopwatch,
) -> BuildResult:
    """Write the shards, strategy configs, stats, diversity tables, card and rejects, then swap them in."""
    started = clock.now()
    image_stats = ImageStats.total(images.results)
    caption_stats, report_stats, texts = totals(captions.results)
    problems = check_accounting(listed.stats, image_stats, curated.stats, caption_stats)
    if problems:
        raise BuildError("item accounting failed (a bug; please report it): " + "; ".join(problems))
    tables = diversity_tables(texts)
    del texts  # the largest thing the build holds: gone before the shards are written
    strategy_names = strategy_configs.names_for(recipe.captions.policy) if recipe.output.strategy_configs else None
    shards = write_shards(
        prepared.out / WORK_DIR, rows, curated.splits, recipe.output.rows_per_shard, strategy_names,
        recipe.output.strategy_images,
    )
    stats = build_stats(
        recipe=recipe.name,
        seed=recipe.seed,
        sources={
            spec.name: SourceInfo(spec.layout, spec.role, src.license, list(src.notices.values()))
            for spec, src in prepared.sources
        },
        skipped=prepared.skipped,
        enumerated=listed.stats,
        images=image_stats,
        curation=curated.stats,
        captions=caption_stats,
        reports=report_stats,
        reject_reasons=[r.reason.split(":")[0] for r in rejects],
        splits=dict(sorted(curated.splits.items())),
        split_bytes=shards.split_bytes,
        split_download_bytes=shards.split_download_bytes,
        leakage=curated.leakage,
        shards={run.name: (run.shards, run.resumed) for run in (images, captions)},
        llm_unavailable=prepared.setup.llm_missing,
        strategies=shards.strategies,
        stages=clock.times,
    )
    card = render_card(recipe, stats, shards.split_files, tables, strategy_names or [])
    clock.record("publish", started, stats["rows"])  # the card was the last of it
    stats["stages"] = stage_table(clock.times)
    swap_in(
        prepared.out,
        prepared.out / WORK_DIR,
        {
            REJECTS: _jsonl(rejects),
            STATS: json.dumps(stats, indent=2, sort_keys=True) + "\n",
            DIVERSITY: json.dumps(tables, indent=2, sort_keys=True) + "\n",
            CARD: card,
        },
    )
    return BuildResult(out=prepared.out, stats=stats, split_files=shards.split_files)


def all_rejects(listed: Listed, staged: list[ShardTask], curated: Curated) -> list[Reject]:
    """Every reject of the build (listing, decoding, curation), in the order ``rejects.jsonl`` lists them."""
    return sorted([*listed.rejects, *read_rejects(staged), *curated.rejects], key=_reject_order)


def _reject_order(r: Reject) -> tuple[str, str, str, str]:
    return (r.source, r.path, r.stage, r.reason)


def _jsonl(rejects: list[Reject]) -> str:
    return "".join(json.dumps(r.to_dict(), sort_keys=True) + "\n" for r in rejects)


# progress -------------------------------------------------------------------------
class _NullBar:
    def update(self, n: int = 1) -> None: ...

    def close(self) -> None: ...


def tqdm_progress(quiet: bool) -> ProgressFactory:
    if quiet or os.environ.get("CI") or not sys.stderr.isatty():
        return lambda total, desc: _NullBar()
    from tqdm.auto import tqdm

    return lambda total, desc: tqdm(total=total, desc=desc, unit="shard", dynamic_ncols=True)
