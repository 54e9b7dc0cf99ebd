"""The caption stage: one staged shard's kept rows in, their captioned columns out.

After curation has chosen the rows and their splits, each staged shard is
captioned on its own, by the same executor as the image stage (worker
processes, or Ray tasks on a cluster): reports are de-identified, captioned
and read for findings (translated first if the recipe says so), the LLM tier
asks its server(s), and the policy picks the caption. The output is every
published column except the image, in the shard's row order, written to a
temporary name and renamed, then marked done with a fingerprint of what it
depends on: the staged shard, the kept rows and their splits, the caption
configuration and the template and prompt files. A rerun skips done shards;
the driver joins the captioned columns with the staged images when it writes
the published shards. Which shards are done, and running the others on the
executor, is the stage driver's job (:mod:`echocaptions.driver`).

Each shard writes new LLM answers to a cache of its own and reads the build's
cache without locks (see :mod:`echocaptions.captions.llm.cache`); the driver
folds the shard caches into the build's cache when the stage ends. Shards
share nothing while they run, so the output does not depend on how many
processes or machines caption, nor in which order they finish.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.parquet as pq

from echocaptions.captions.llm.cache import LayeredCache, LLMCache, merge_caches
from echocaptions.captions.llm.client import (
    LLMCaptioner,
    LLMConfig,
    LLMRequest,
    LLMResult,
    LLMServerError,
)
from echocaptions.captions.llm.translate import ReportTranslator
from echocaptions.captions.policy import CaptionPolicy
from echocaptions.captions.report_stage import ReportOutcome, ReportStage
from echocaptions.driver import ShardStage, StageError, StageTask
from echocaptions.imaging.stage import SMALL_COLUMNS
from echocaptions.io import atomic_write
from echocaptions.recipe import CaptionSpec, ReportSpec
from echocaptions.resources import bundled_dir
from echocaptions.schema import (
    ROW_FLAGS,
    Record,
    SourceItem,
    arrow_schema,
    phash_hex,
    record_to_row,
)
from echocaptions.stats import CaptionStats, ReportStats
from echocaptions.version import package_version


def captioned_schema() -> pa.Schema:
    """The published schema without the image column (and without the card's metadata)."""
    schema = arrow_schema()
    return schema.remove(schema.get_field_index("image")).remove_metadata()


def make_policy(spec: CaptionSpec, seed: int) -> CaptionPolicy:
    """The caption policy of the recipe's ``captions`` block."""
    return CaptionPolicy(
        list(spec.policy),
        seed=seed,
        template_dir=Path(spec.template_dir) if spec.template_dir else None,
        template_variants=spec.template_variants,
    )


_REPORT_STAGES: dict[str, ReportStage] = {}


def make_report_stage(spec: ReportSpec, translator: ReportTranslator | None = None) -> ReportStage:
    """The report stage of the recipe's ``reports`` block.

    Without a translator (and without a tokenizer read from a folder, which
    may change) it is made once per process and spec, since making one
    compiles hundreds of patterns, and handed out reset, as new: the build's
    check at its start and the caption shards that run in the same process
    share it.
    """
    if translator is not None or ":" in spec.tokenizer:
        return _new_report_stage(spec, translator)
    key = spec.model_dump_json()
    stage = _REPORT_STAGES.get(key)
    if stage is None:
        _REPORT_STAGES.clear()
        stage = _REPORT_STAGES[key] = _new_report_stage(spec, None)
    stage.reset()
    return stage


def _new_report_stage(spec: ReportSpec, translator: ReportTranslator | None) -> ReportStage:
    return ReportStage(
        tokenizer=spec.tokenizer,
        budget=spec.budget,
        languages=tuple(spec.languages),
        sections={k.upper(): v for k, v in spec.sections.items()},
        spacy_model=spec.spacy_model,
        ner=spec.ner,
        fill_findings=spec.fill_findings,
        translator=translator,
    )


def report_libraries(spec: ReportSpec) -> tuple[str, ...]:
    """What processing reports imports on first use, seconds each (both pull in torch).

    spaCy splits sentences (and finds names when NER is on); the tokenizer
    counts tokens: open_clip's for ``clip``, a transformers one for ``bert:DIR``.
    """
    tokenizer = {"clip": "open_clip.tokenizer"}.get(spec.tokenizer, "transformers" if ":" in spec.tokenizer else None)
    return ("spacy", *([tokenizer] if tokenizer else []))


@dataclass(frozen=True)
class CaptionSetup:
    """Everything a worker needs to caption rows the way this build does (picklable).

    The recipe's ``captions`` and ``reports`` blocks travel as they are; the
    rest is what the build settled at its start: the LLM client's settings
    (its key read on the driver), why there are no LLM answers if there are
    none, and where the build's answer cache is.
    """

    captions: CaptionSpec
    reports: ReportSpec
    seed: int = 0
    llm: LLMConfig | None = None
    llm_with_report: bool = False
    llm_missing: str | None = None  # why no row has an LLM answer (optional tier, server down)
    llm_cache: str | None = None  # the build's cache, read only while shards run
    # The captioned columns' Arrow schema, made once on the driver (making it imports `datasets`).
    schema: pa.Schema | None = None

    @property
    def translate(self) -> bool:
        return self.reports.translate and self.llm is not None

    def fingerprint(self) -> str:
        """Hash of the configuration and of the template and prompt files it reads."""
        fields = {
            "captions": self.captions.model_dump(),
            "reports": self.reports.model_dump(),
            "seed": self.seed,
            "llm": {k: v for k, v in asdict(self.llm).items() if k != "api_key"} if self.llm is not None else None,
            "llm_with_report": self.llm_with_report,
            "llm_missing": self.llm_missing,
        }
        digest = hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode())
        template_dir = self.captions.template_dir
        folders = {Path(template_dir) if template_dir else bundled_dir("templates")}
        if self.llm is not None:
            folders.add(Path(self.llm.prompt_dir) if self.llm.prompt_dir else bundled_dir("prompts"))
            folders.add(bundled_dir("prompts"))  # the translation prompt falls back to the bundled one
        for folder in sorted(folders):
            for path in sorted(p for p in folder.rglob("*") if p.is_file()):
                digest.update(f"{path.relative_to(folder)}\x1f".encode())
                digest.update(hashlib.sha256(path.read_bytes()).digest())
        digest.update(package_version().encode())
        return digest.hexdigest()


class StagedShard(StageTask, Protocol):
    """What the caption stage reads of an image stage shard."""

    staged_path: str


@dataclass(frozen=True)
class CaptionTask:
    index: int
    staged_path: str
    staged_done_path: str
    keep: tuple[tuple[int, str], ...]  # (row position in the staged shard, split), ascending
    out_path: str
    done_path: str
    llm_cache_path: str
    setup: CaptionSetup
    setup_fingerprint: str


def fingerprint(task: CaptionTask) -> str:
    digest = hashlib.sha256(task.setup_fingerprint.encode())
    digest.update(Path(task.staged_done_path).read_bytes())
    digest.update(json.dumps(task.keep).encode())
    return digest.hexdigest()


# per-process tools ----------------------------------------------------------------
class _Tools:
    """The policy, LLM client and (made when a shard first has a report) report stage of one setup."""

    def __init__(self, setup: CaptionSetup) -> None:
        self.setup = setup
        self.llm = LLMCaptioner(setup.llm) if setup.llm is not None else None
        self.policy = make_policy(setup.captions, setup.seed)
        if setup.llm_missing:
            self.policy.llm_missing = setup.llm_missing
        self._reports: ReportStage | None = None

    @property
    def reports(self) -> ReportStage:
        if self._reports is None:
            setup = self.setup
            translator = (
                ReportTranslator(self.llm, setup.reports.translate_max_tokens) if setup.translate and self.llm else None
            )
            self._reports = make_report_stage(setup.reports, translator)
        return self._reports

    def reset(self) -> None:
        """Forget what earlier shards left (report counts, recent reports, what the client learnt)."""
        if self._reports is not None:
            self._reports.reset()
        if self.llm is not None:
            self.llm.reset()


_TOOLS: dict[str, _Tools] = {}


def tools_for(setup: CaptionSetup, setup_fingerprint: str) -> _Tools:
    """The tools of ``setup``, made once per process.

    State that lives across batches is reset for every shard (report counts
    and recent reports, what the LLM client learnt about its server), so a
    shard's output does not depend on which shards the process ran before.
    """
    api_key = setup.llm.api_key if setup.llm is not None else ""
    key = hashlib.sha256(f"{setup_fingerprint}\x1f{api_key}".encode()).hexdigest()
    tools = _TOOLS.get(key)
    if tools is None:
        tools = _Tools(setup)
        _TOOLS.clear()
        _TOOLS[key] = tools
    tools.reset()
    return tools


# one shard ------------------------------------------------------------------------
def run_caption_shard(task: CaptionTask) -> dict[str, Any]:
    """Caption the kept rows of one staged shard; write them; return its stats and diversity texts."""
    setup = task.setup
    tools = tools_for(setup, task.setup_fingerprint)
    split_at = dict(task.keep)
    rows: list[tuple[dict[str, Any], str, SourceItem]] = []
    position = -1
    for batch in pq.ParquetFile(task.staged_path).iter_batches(batch_size=256, columns=SMALL_COLUMNS):
        for row in batch.to_pylist():
            position += 1
            split = split_at.get(position)
            if split is not None:
                rows.append((row, split, SourceItem.from_dict(json.loads(row["item"]))))
    if len(rows) != len(split_at):
        raise RuntimeError(f"{task.staged_path}: {len(rows)} of {len(split_at)} kept rows found; rerun the build")
    stats = CaptionStats()
    texts: list[dict[str, Any]] = []
    out: list[dict[str, Any]] = []
    llm = tools.llm if "llm" in setup.captions.policy and not setup.llm_missing else None
    uses_llm = tools.llm is not None
    if uses_llm:
        tools.llm.use_cache(LayeredCache(task.llm_cache_path, setup.llm_cache))
    reports = ReportStats()
    try:
        if any(item.report and item.report.strip() for _, _, item in rows):
            report_stage = tools.reports
            outcomes = report_stage.process([(item.report, item.organ) for _, _, item in rows])
            reports = ReportStats(
                processed=report_stage.reports_seen,
                languages=report_stage.languages.copy(),
                phi_removed=report_stage.phi_removed.copy(),
                translated=report_stage.translated.copy(),
            )
        else:  # what the report stage gives rows without a report, without starting it
            outcomes = [ReportOutcome() for _ in rows]
        merged = [merge_findings(item.findings, o.findings) for (_, _, item), o in zip(rows, outcomes, strict=True)]
        answers = _llm_answers(llm, setup.llm_with_report, rows, outcomes, merged)
    finally:
        if uses_llm:
            tools.llm.use_cache(None)
    for (row, split, item), outcome, (findings, findings_source), answer in zip(
        rows, outcomes, merged, answers, strict=True
    ):
        caption, caption_source, captions, meta = tools.policy.choose(
            row["id"], item, findings, outcome.result, answer
        )
        flags = [name for name in ROW_FLAGS if item.extra.get(name)]
        if item.extra.get("organ_from"):  # which rule gave a report corpus item its organ
            flags.append(f"organ_from={item.extra['organ_from']}")
        if flags:
            meta["flags"] = ",".join(flags)
        record = Record(
            id=row["id"],
            image=b"",
            organ=item.organ,
            dataset=item.dataset,
            source_path=item.source_path,
            width=row["width"],
            height=row["height"],
            sha256=row["sha256"],
            phash=phash_hex(row["phash"]),
            split=split,
            frame=row["frame"],
            view=item.view,
            patient_id=item.patient_id,
            study_id=item.study_id,
            label=item.label,
            findings=findings,
            findings_source=findings_source,
            report=outcome.text if setup.reports.publish else None,
            report_language=outcome.result.language if outcome.result else None,
            caption=caption,
            caption_source=caption_source,
            captions=captions,
            caption_meta=meta,
            license=item.license,
        )
        stats.count(
            item.source, item.dataset, item.organ, item.label, split, caption_source, (c.source for c in captions)
        )
        texts.append(
            {
                "id": row["id"],
                "caption": caption,
                "caption_source": caption_source,
                "organ": item.organ,
                "label": item.label,
                "dataset": item.dataset,
                "findings": findings,
                "captions": [{"source": c.source, "text": c.text} for c in captions],
            }
        )
        published = record_to_row(record)
        del published["image"]
        out.append(published)
    table = pa.Table.from_pylist(out, schema=setup.schema or captioned_schema())
    atomic_write(task.out_path, lambda p: pq.write_table(table, p, compression="zstd"))
    return {"stats": stats.to_dict(), "reports": reports.to_dict(), "texts": texts}


def _llm_answers(
    llm: LLMCaptioner | None,
    with_report: bool,
    rows: list[tuple[dict[str, Any], str, SourceItem]],
    outcomes: list[ReportOutcome],
    merged: list[tuple[dict[str, str | None], str | None]],
) -> list[LLMResult | None]:
    if llm is None or not rows:
        return [None] * len(rows)
    requests = [
        LLMRequest(
            record_id=row["id"],
            organ=item.organ,
            label=item.label,
            findings=findings,
            view=item.view,
            dataset=item.dataset,
            report=outcome.text if with_report else None,
        )
        for (row, _, item), outcome, (findings, _) in zip(rows, outcomes, merged, strict=True)
    ]
    return list(llm.caption(requests))


def merge_findings(
    layout: dict[str, str | None], from_report: dict[str, str]
) -> tuple[dict[str, str | None], str | None]:
    """The layout's findings, completed by those read from the report; and where they came from."""
    merged = {k: v for k, v in layout.items() if v is not None}
    added = {k: v for k, v in from_report.items() if merged.get(k) is None}
    merged.update(added)
    sources = [name for name, used in (("layout", len(merged) > len(added)), ("report", bool(added))) if used]
    return merged, "+".join(sources) or None


# the stage ---------------------------------------------------------------------------
class CaptionStage(ShardStage[CaptionTask]):
    """Kept staged rows in, captioned columns out; see the module docstring.

    Inputs: the image stage's staged shards and, per shard, the rows curation
    kept with their splits. Output per shard: ``captioned/NNNNN.parquet``.
    """

    name = "captions"
    num_cpus = 1
    num_gpus = 0

    def __init__(self, work_dir: Path, setup: CaptionSetup, work=run_caption_shard, reports: bool = True) -> None:
        """``reports``: whether any row may come with a report (processing them loads heavy libraries)."""
        libraries = report_libraries(setup.reports) if reports else ()
        super().__init__(Path(work_dir) / "captioned", work, (__name__, *libraries))
        self.llm_folder = Path(work_dir) / "llm"
        self.setup = setup

    def plan(self, staged: Sequence[StagedShard], keep: Sequence[tuple[tuple[int, str], ...]]) -> list[CaptionTask]:
        """One task per staged shard, naming its kept rows by position, with their split."""
        setup_fingerprint = self.setup.fingerprint()
        return [
            CaptionTask(
                index=shard.index,
                staged_path=shard.staged_path,
                staged_done_path=shard.done_path,
                keep=tuple(kept),
                out_path=str(self.folder / f"{shard.index:05d}.parquet"),
                done_path=str(self.folder / f"{shard.index:05d}.done"),
                llm_cache_path=str(self.llm_folder / f"{shard.index:05d}.sqlite"),
                setup=self.setup,
                setup_fingerprint=setup_fingerprint,
            )
            for shard, kept in zip(staged, keep, strict=True)
        ]

    def fingerprint(self, task: CaptionTask) -> str:
        return fingerprint(task)

    def outputs(self, task: CaptionTask) -> tuple[str, ...]:
        return (task.out_path,)

    def still_valid(self, task: CaptionTask, result: dict[str, Any]) -> bool:
        try:
            return pq.read_metadata(task.out_path).num_rows == len(task.keep)
        except (OSError, pa.ArrowException):
            return False

    def items(self, results: Sequence[dict[str, Any]]) -> int:
        return sum(sum(r["stats"]["kept"].values()) for r in results)

    def before(self, todo: Sequence[CaptionTask]) -> None:
        self.llm_folder.mkdir(parents=True, exist_ok=True)
        base = self.setup.llm_cache
        if base and Path(base).is_file():
            cache = LLMCache(base)  # shards read it without locks: no write-ahead log left over
            cache.checkpoint()
            cache.close()

    def after(self, finished: Sequence[CaptionTask], failed: bool) -> None:
        """Fold the LLM answers of finished shards into the build's cache.

        Unfinished shards keep their caches: a worker may still be writing one,
        and the shard's rerun reads it first.
        """
        if not self.setup.llm_cache:
            return
        caches = [Path(t.llm_cache_path) for t in finished if Path(t.llm_cache_path).is_file()]
        try:
            if caches:
                merge_caches(self.setup.llm_cache, caches)
        except (RuntimeError, OSError) as exc:
            if not failed:
                raise StageError(str(exc)) from exc
            print(f"warning: {exc}", file=sys.stderr)  # the error being raised says more

    def explain(self, exc: Exception) -> str | None:
        if isinstance(exc, LLMServerError):
            cause = getattr(exc, "cause", None) or exc  # a Ray task's error wraps the worker's
            return f"{cause}\nanswers so far are cached; rerun the same command to resume"
        return None


def totals(results: Sequence[dict[str, Any]]) -> tuple[CaptionStats, ReportStats, list[dict[str, Any]]]:
    """The stage's stats, its report counts and every row's diversity texts, in shard order.

    The texts are taken out of the results, so that they are freed as soon as the caller is done with them.
    """
    stats, reports, texts = CaptionStats(), ReportStats(), []
    for result in results:
        stats.merge(result["stats"])
        reports.merge(result["reports"])
        texts.extend(result.pop("texts"))
    return stats, reports, texts


def published_rows(tasks: Sequence[CaptionTask]) -> Iterator[dict[str, Any]]:
    """The captioned columns of every kept row joined with its staged image, in shard order."""
    for task in tasks:
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
                    raise StageError(f"{task.out_path} does not match {task.staged_path}; rerun the build")
                yield {**row, "image": {"bytes": image, "path": None}}
                pos_wanted, row = next(wanted, (None, None))
            if pos_wanted is None:  # the shard's last kept row: the rest was dropped, not read
                break
