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
the published shards.

Each shard writes new LLM answers to a cache of its own and reads the build's
cache without locks (see :mod:`echocaptions.captions.llm_cache`); the driver
folds the shard caches into the build's cache when the stage ends. Shards
share nothing while they run, so the output does not depend on how many
processes or machines caption, nor in which order they finish.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from echocaptions.captions.llm import LLMCaptioner, LLMConfig, LLMRequest, LLMResult
from echocaptions.captions.llm_cache import LayeredCache
from echocaptions.captions.policy import CaptionPolicy
from echocaptions.captions.report_stage import ReportOutcome, ReportStage
from echocaptions.captions.translate import ReportTranslator
from echocaptions.imaging.stage import _atomic_write
from echocaptions.resources import bundled_dir
from echocaptions.schema import (
    ROW_FLAGS,
    Caption,
    Record,
    SourceItem,
    arrow_schema,
    phash_hex,
    record_to_row,
)

STAGED_COLUMNS = ["id", "frame", "width", "height", "sha256", "phash", "item"]


def captioned_schema() -> pa.Schema:
    """The published schema without the image column (and without the card's metadata)."""
    schema = arrow_schema()
    return schema.remove(schema.get_field_index("image")).remove_metadata()


@dataclass(frozen=True)
class CaptionSetup:
    """Everything a worker needs to caption rows the way this build does (picklable)."""

    policy: tuple[str, ...]
    seed: int = 0
    template_dir: str | None = None
    template_variants: int = 1
    reports: dict[str, Any] = field(default_factory=dict)  # ReportStage arguments, no translator
    translate: bool = False
    translate_max_tokens: int = 512
    llm: LLMConfig | None = None
    llm_with_report: bool = False
    llm_missing: str | None = None  # why no row has an LLM answer (optional tier, server down)
    llm_cache: str | None = None  # the build's cache, read only while shards run
    publish_reports: bool = False

    def fingerprint(self) -> str:
        """Hash of the configuration and of the template and prompt files it reads."""
        fields = asdict(self)
        fields.pop("llm_cache")
        if self.llm is not None:
            fields["llm"] = {k: v for k, v in asdict(self.llm).items() if k != "api_key"}
        digest = hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode())
        folders = {Path(self.template_dir) if self.template_dir else bundled_dir("templates")}
        if self.llm is not None:
            folders.add(Path(self.llm.prompt_dir) if self.llm.prompt_dir else bundled_dir("prompts"))
            folders.add(bundled_dir("prompts"))  # the translation prompt falls back to the bundled one
        for folder in sorted(folders):
            for path in sorted(p for p in folder.rglob("*") if p.is_file()):
                digest.update(f"{path.relative_to(folder)}\x1f".encode())
                digest.update(hashlib.sha256(path.read_bytes()).digest())
        from echocaptions.executors.ray import package_version

        digest.update(package_version().encode())
        return digest.hexdigest()


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


def caption_done(task: CaptionTask) -> dict[str, Any] | None:
    """What a finished shard recorded (stats and diversity texts), or None when it must be run."""
    done = Path(task.done_path)
    if not done.is_file() or not Path(task.out_path).is_file():
        return None
    try:
        marker = json.loads(done.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    if marker.get("fingerprint") != fingerprint(task):
        return None
    try:
        rows = pq.read_metadata(task.out_path).num_rows
    except (OSError, pa.ArrowException):
        return None
    return marker["result"] if rows == len(task.keep) else None


# per-process tools ----------------------------------------------------------------
@dataclass
class _Tools:
    policy: CaptionPolicy
    reports: ReportStage
    llm: LLMCaptioner | None


_TOOLS: dict[str, _Tools] = {}


def _tools(task: CaptionTask) -> _Tools:
    """The policy, report stage and LLM client for this setup, made once per process.

    State that lives across batches is reset for every shard (report counts
    and recent reports, what the LLM client learnt about its server), so a
    shard's output does not depend on which shards the process ran before.
    """
    api_key = task.setup.llm.api_key if task.setup.llm is not None else ""
    key = hashlib.sha256(f"{task.setup_fingerprint}\x1f{api_key}".encode()).hexdigest()
    tools = _TOOLS.get(key)
    if tools is None:
        setup = task.setup
        llm = LLMCaptioner(setup.llm) if setup.llm is not None else None
        translator = ReportTranslator(llm, setup.translate_max_tokens) if setup.translate and llm else None
        policy = CaptionPolicy(
            list(setup.policy),
            seed=setup.seed,
            template_dir=Path(setup.template_dir) if setup.template_dir else None,
            template_variants=setup.template_variants,
        )
        if setup.llm_missing:
            policy.llm_missing = setup.llm_missing
        tools = _Tools(policy, ReportStage(**setup.reports, translator=translator), llm)
        _TOOLS.clear()
        _TOOLS[key] = tools
    tools.reports.reset()
    if tools.llm is not None:
        tools.llm.reset()
    return tools


# one shard ------------------------------------------------------------------------
def run_caption_shard(task: CaptionTask) -> dict[str, Any]:
    """Caption the kept rows of one staged shard; return its stats and diversity texts."""
    tools = _tools(task)
    split_at = dict(task.keep)
    rows: list[tuple[dict[str, Any], str, SourceItem]] = []
    position = -1
    for batch in pq.ParquetFile(task.staged_path).iter_batches(batch_size=256, columns=STAGED_COLUMNS):
        for row in batch.to_pylist():
            position += 1
            split = split_at.get(position)
            if split is not None:
                rows.append((row, split, SourceItem.from_dict(json.loads(row["item"]))))
    if len(rows) != len(split_at):
        raise RuntimeError(f"{task.staged_path}: {len(rows)} of {len(split_at)} kept rows found; rerun the build")
    stats = _Stats()
    texts: list[dict[str, Any]] = []
    out: list[dict[str, Any]] = []
    llm = tools.llm if "llm" in task.setup.policy and not task.setup.llm_missing else None
    uses_llm = tools.llm is not None
    if uses_llm:
        tools.llm.use_cache(LayeredCache(task.llm_cache_path, task.setup.llm_cache))
    try:
        outcomes = tools.reports.process([(item.report, item.organ) for _, _, item in rows])
        merged = [merge_findings(item.findings, o.findings) for (_, _, item), o in zip(rows, outcomes, strict=True)]
        answers = _llm_answers(llm, task.setup.llm_with_report, rows, outcomes, merged)
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
            report=outcome.text if task.setup.publish_reports else None,
            report_language=outcome.result.language if outcome.result else None,
            caption=caption,
            caption_source=caption_source,
            captions=captions,
            caption_meta=meta,
            license=item.license,
        )
        stats.count(item, record, captions)
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
    table = pa.Table.from_pylist(out, schema=captioned_schema())
    _atomic_write(Path(task.out_path), lambda p: pq.write_table(table, p, compression="zstd"))
    reports = tools.reports
    result = {
        "stats": stats.plain(),
        "reports": {
            "processed": reports.reports_seen,
            "languages": dict(reports.languages),
            "phi_removed": dict(reports.phi_removed),
            "translated": dict(reports.translated),
        },
        "texts": texts,
    }
    marker = json.dumps({"fingerprint": fingerprint(task), "result": result}, sort_keys=True, ensure_ascii=False)
    _atomic_write(Path(task.done_path), lambda p: Path(p).write_text(marker, encoding="utf-8"))
    return result


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


class _Stats:
    """The per-shard counts the build's stats.json sums."""

    def __init__(self) -> None:
        self.kept: Counter = Counter()
        self.unlabelled: Counter = Counter()
        self.datasets: Counter = Counter()
        self.organs: Counter = Counter()
        self.labels: Counter = Counter()
        self.caption_sources: Counter = Counter()
        self.caption_candidates: Counter = Counter()
        self.by_split: dict[str, Counter] = defaultdict(Counter)
        self.class_balance: dict[str, Counter] = defaultdict(Counter)

    def count(self, item: SourceItem, record: Record, captions: list[Caption]) -> None:
        label = f"{item.organ}/{item.label or 'unlabelled'}"
        self.kept[item.source] += 1
        if item.label is None:
            self.unlabelled[item.source] += 1
        self.datasets[item.dataset] += 1
        self.organs[item.organ] += 1
        self.labels[label] += 1
        self.caption_sources[record.caption_source] += 1
        for c in captions:
            self.caption_candidates[c.source] += 1
        self.by_split[record.split][item.source] += 1
        self.class_balance[record.split][label] += 1

    def plain(self) -> dict[str, Any]:
        return {
            name: {k: dict(v) if isinstance(v, Counter) else v for k, v in value.items()}
            for name, value in vars(self).items()
        }


def add_stats(stats: dict[str, Any], shard: dict[str, Any]) -> None:
    """Add one shard's counts (from :func:`run_caption_shard`) to the build's stats."""
    for source, n in shard["kept"].items():
        stats["sources"][source]["kept"] += n
    for source, n in shard.get("unlabelled", {}).items():
        stats["sources"][source]["unlabelled"] += n
    for name in ("datasets", "organs", "labels", "caption_sources", "caption_candidates"):
        stats[name].update(shard[name])
    for name in ("by_split", "class_balance"):
        for split, counts in shard[name].items():
            stats[name][split].update(counts)
