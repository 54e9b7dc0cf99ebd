"""A self-contained HTML report of a build: ``OUT/report.html``.

One file with no external references: counts per organ, dataset, split, label
and caption source; the leakage check; diversity tables and plots (matplotlib,
embedded PNG); rejects grouped by reason; and a thumbnail gallery per organ and
label that lists every caption candidate with its provenance.

Memory does not grow with the build: the shards are read in record batches,
counts are kept in counters, and the gallery is a fixed-size sample per organ
and label (the rows whose id hashes lowest, see :func:`sample_key`). Only the
row groups holding sampled rows are read a second time, for their images.

The page is the Jinja template ``echocaptions/publish/templates/report.html.j2``.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import heapq
import io
import json
import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow.parquet as pq

from echocaptions.io import write_text
from echocaptions.publish.build import Build, BuildFolderError, open_build
from echocaptions.schema import LABEL_NAMES, LABELS, ORGANS, PROVENANCE_FIELDS

if TYPE_CHECKING:  # jinja2 is imported on the first report, not with this module
    from jinja2 import Template

REPORT_NAME = "report.html"
TEMPLATE_NAME = "report.html.j2"
THUMB_SIDE = 160
UNLABELLED = "unlabelled"
MAX_REJECT_GROUPS = 10_000
SHOWN_REJECT_GROUPS = 100

_SCAN_COLUMNS = ["id", "organ", "label", "dataset", "split", "caption", "caption_source", "captions"]
_GALLERY_COLUMNS = [
    "id", "image", "dataset", "source_path", "frame", "view", "patient_id", "findings", "report",
    "report_language", "caption", "caption_source", "captions", "caption_meta", "width", "height",
    "split",
]
_LEAKAGE_LABELS = {
    "patients_across_splits": "patients shared across splits",
    "identical_images_across_splits": "identical images across splits",
    "near_duplicate_clusters_across_splits": "near-duplicate clusters across splits",
    "max_hamming": "near-duplicate threshold (pHash Hamming distance)",
}


class ReportError(BuildFolderError):
    """The folder is not a finished build (the same text for every reader, see :func:`open_build`), or the report
    cannot be made."""


def sample_key(row_id: str) -> int:
    """Gallery order of a row: a stable 64-bit hash of its id (lowest first)."""
    return int.from_bytes(hashlib.blake2b(row_id.encode("utf-8"), digest_size=8).digest(), "big")


_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
_PAREN = re.compile(r"\([^()]*\)")
_PATHLIKE = re.compile(r"\S*[/\\]\S*|\S+\.[A-Za-z][A-Za-z0-9]{0,4}\b|#\S+")
_NUMBER = re.compile(r"\b\d+\b")


def reason_group(reason: str) -> str:
    """A reject reason without its file-specific parts, so alike reasons count together.

    The part before the first colon is kept when it reads as a category
    (``duplicate_of:<id> ...`` -> ``duplicate_of``, ``unreadable image: ...``
    -> ``unreadable image``); quoted values, parentheses, paths and numbers
    become ``…``.
    """
    head, sep, _ = reason.partition(":")
    text = head if sep and head.strip() and not _PATHLIKE.search(head) else reason
    text = _QUOTED.sub("…", text)
    text = _PAREN.sub("(…)", text)
    text = _PATHLIKE.sub("…", text)
    text = _NUMBER.sub("…", text)
    return re.sub(r"\s+", " ", text).strip() or "(no reason)"


@dataclass
class _Scan:
    rows: int = 0
    organ: Counter = field(default_factory=Counter)
    dataset: Counter = field(default_factory=Counter)
    split: Counter = field(default_factory=Counter)
    label: Counter = field(default_factory=Counter)  # (organ, label)
    caption_source: Counter = field(default_factory=Counter)
    candidates: Counter = field(default_factory=Counter)
    split_organ: Counter = field(default_factory=Counter)  # (split, organ)
    label_split: Counter = field(default_factory=Counter)  # (organ, label, split)
    lengths: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    # (organ, label) -> max-heap by negated key: [(-key, id, shard index, row offset)]
    sample: dict[tuple[str, str], list[tuple[int, str, int, int]]] = field(
        default_factory=lambda: defaultdict(list)
    )


def _class_names(schema) -> tuple[list[str], list[str]]:
    """ClassLabel names of organ and label, from the shard's features (else the package schema)."""
    organs, labels = list(ORGANS), list(LABEL_NAMES)
    meta = (schema.metadata or {}).get(b"huggingface")
    if meta:
        try:
            features = json.loads(meta)["info"]["features"]
            organs = list(features["organ"]["names"])
            labels = list(features["label"]["names"])
        except (KeyError, TypeError, ValueError):
            pass
    return organs, labels


def _scan(shards: list[Path], per_class: int, batch_size: int) -> _Scan:
    from echocaptions.metrics.diversity import tokenize

    scan = _Scan()
    for shard_index, shard in enumerate(shards):
        pf = pq.ParquetFile(shard)
        organ_names, label_names = _class_names(pf.schema_arrow)
        offset = 0
        for batch in pf.iter_batches(batch_size=batch_size, columns=_SCAN_COLUMNS):
            cols = {name: batch.column(name).to_pylist() for name in _SCAN_COLUMNS if name != "captions"}
            flat = batch.column("captions").flatten()
            scan.candidates.update(flat.field("source").to_pylist())
            for i, row_id in enumerate(cols["id"]):
                organ = organ_names[cols["organ"][i]]
                index = cols["label"][i]
                label = UNLABELLED if index is None or index < 0 else label_names[index]
                split, source = cols["split"][i], cols["caption_source"][i]
                scan.organ[organ] += 1
                scan.dataset[cols["dataset"][i]] += 1
                scan.split[split] += 1
                scan.label[(organ, label)] += 1
                scan.caption_source[source] += 1
                scan.split_organ[(split, organ)] += 1
                scan.label_split[(organ, label, split)] += 1
                scan.lengths[source][len(tokenize(cols["caption"][i] or ""))] += 1
                heap = scan.sample[(organ, label)]
                entry = (-sample_key(row_id), row_id, shard_index, offset + i)
                if len(heap) < per_class:
                    heapq.heappush(heap, entry)
                elif per_class and entry > heap[0]:
                    heapq.heapreplace(heap, entry)
            offset += batch.num_rows
            scan.rows += batch.num_rows
    return scan


def _thumbnail(data: bytes | None) -> tuple[str | None, int, int, str]:
    """A ``data:`` URI of the image downscaled to THUMB_SIDE, its size, or an error text."""
    from PIL import Image

    if not data:
        return None, 0, 0, "no image bytes"
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            img.thumbnail((THUMB_SIDE, THUMB_SIDE))
            if img.mode not in ("L", "RGB"):
                img = img.convert("RGB")
            buf = io.BytesIO()
            img.save(buf, format="JPEG", quality=85)
            size = img.size
    except Exception as exc:  # a corrupt image is shown as such, not a crash
        return None, 0, 0, f"image does not decode: {type(exc).__name__}"
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii"), *size, ""


def _provenance(c: dict[str, Any]) -> str:
    parts = []
    for name in PROVENANCE_FIELDS:
        value = c.get(name)
        if value is None:
            continue
        if isinstance(value, float):
            value = f"{value:g}"
        parts.append(f"{name} {value}")
    return " · ".join(parts)


def _gallery_item(row: dict[str, Any]) -> dict[str, Any]:
    thumb, tw, th, error = _thumbnail((row.get("image") or {}).get("bytes"))
    meta = row.get("caption_meta") or {}
    chosen_seen = False
    candidates = []
    for c in row.get("captions") or []:
        chosen = not chosen_seen and c["source"] == row["caption_source"] and c["text"] == row["caption"]
        chosen_seen = chosen_seen or chosen
        candidates.append({"source": c["source"], "text": c["text"], "chosen": chosen, "prov": _provenance(c)})
    findings = sorted((k, v) for k, v in (row.get("findings") or {}).items() if v is not None)
    return {
        "id": row["id"], "thumb": thumb, "tw": tw, "th": th, "thumb_error": error,
        "dataset": row["dataset"], "split": row["split"], "source_path": row["source_path"],
        "frame": row["frame"], "view": row["view"], "patient_id": row["patient_id"],
        "width": row["width"], "height": row["height"], "findings": findings,
        "report": row["report"], "report_language": row["report_language"],
        "policy": meta.get("policy"), "chosen": meta.get("chosen") or row["caption_source"],
        "fallback": meta.get("fallback"), "flags": meta.get("flags"), "candidates": candidates,
    }


def _load_sample(shards: list[Path], scan: _Scan) -> dict[str, dict[str, Any]]:
    """Gallery items by id, reading only the row groups that hold sampled rows."""
    wanted: dict[int, dict[int, str]] = defaultdict(dict)
    for heap in scan.sample.values():
        for _, row_id, shard_index, offset in heap:
            wanted[shard_index][offset] = row_id
    items: dict[str, dict[str, Any]] = {}
    for shard_index, offsets in sorted(wanted.items()):
        pf = pq.ParquetFile(shards[shard_index])
        start = 0
        for group in range(pf.metadata.num_row_groups):
            n = pf.metadata.row_group(group).num_rows
            local = sorted(o - start for o in offsets if start <= o < start + n)
            if local:
                table = pf.read_row_group(group, columns=_GALLERY_COLUMNS).take(local)
                for row in table.to_pylist():
                    items[row["id"]] = _gallery_item(row)
            start += n
    missing = {row_id for offsets in wanted.values() for row_id in offsets.values()} - set(items)
    if missing:
        raise ReportError(f"shards changed while the report was read: {len(missing)} sampled rows not found")
    return items


def _label_order(organ: str, label: str) -> tuple[int, int, str]:
    labels = LABELS.get(organ, ())
    return (0, labels.index(label), label) if label in labels else (1, 0, label)


def _organ_order(names: Iterable[str]) -> list[str]:
    return sorted(names, key=lambda o: (ORGANS.index(o) if o in ORGANS else len(ORGANS), o))


def _split_order(names: Iterable[str]) -> list[str]:
    known = ("train", "validation", "test")
    return sorted(names, key=lambda s: (known.index(s) if s in known else len(known), s))


def _count_table(key: str, title: str, head: str, counts: dict[str, int], order: list[str]) -> dict:
    total = sum(counts.values())
    top = max(counts.values(), default=0)
    rows = [
        {
            "name": name,
            "n": counts[name],
            "share": f"{100 * counts[name] / total:.1f}%" if total else "–",
            "width": round(100 * counts[name] / top) if top else 0,
        }
        for name in order
    ]
    return {"key": key, "title": title, "head": head, "rows": rows, "total": total}


def _rejects(build: Build, stats_total: int | None) -> dict[str, Any]:
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    total = 0
    problem = ""
    if build.rejects_path.is_file():
        for rec in build.rejects():
            total += 1
            reason = str(rec.get("reason", ""))
            key = (str(rec.get("stage", "")), reason_group(reason))
            if key not in groups and len(groups) >= MAX_REJECT_GROUPS:
                key = ("", "other reasons")
            g = groups.get(key)
            if g is None:
                g = groups[key] = {
                    "stage": key[0], "reason": key[1], "n": 0, "sources": Counter(),
                    "example_path": str(rec.get("path", "")), "example_reason": reason,
                }
            g["n"] += 1
            g["sources"][str(rec.get("source", ""))] += 1
    elif stats_total:
        problem = f"stats.json counts {stats_total} rejects but there is no rejects.jsonl"
    if stats_total is not None and total != stats_total and not problem:
        problem = f"rejects.jsonl holds {total} rejects, stats.json counts {stats_total}"
    ordered = sorted(groups.values(), key=lambda g: (-g["n"], g["stage"], g["reason"]))
    shown, rest = ordered[:SHOWN_REJECT_GROUPS], ordered[SHOWN_REJECT_GROUPS:]
    if rest:
        shown.append({
            "stage": "", "reason": f"{len(rest)} more reasons", "n": sum(g["n"] for g in rest),
            "sources": sum((g["sources"] for g in rest), Counter()), "example_path": "",
            "example_reason": "",
        })
    for g in shown:
        names = [s for s, _ in g["sources"].most_common(5) if s]
        more = len(g["sources"]) - len(names)
        g["sources"] = ", ".join(names) + (f" +{more}" if more > 0 else "")
    return {"rows": shown, "total": total, "stats_total": stats_total, "problem": problem}


def _leakage(stats: dict[str, Any]) -> dict[str, Any]:
    leak = stats.get("leakage")
    if not isinstance(leak, dict) or not leak:
        return {"status": "unknown", "status_text": "not recorded", "rows": []}
    rows, failed = [], False
    keys = [k for k in _LEAKAGE_LABELS if k in leak] + sorted(k for k in leak if k not in _LEAKAGE_LABELS)
    for key in keys:
        value = leak[key]
        status = ""
        if key.endswith("_across_splits"):
            status = "pass" if value == 0 else "fail"
            failed = failed or status == "fail"
        rows.append({"key": key, "label": _LEAKAGE_LABELS.get(key, key.replace("_", " ")), "value": value,
                     "status": status})
    status = "fail" if failed else "pass"
    return {"status": status, "status_text": status, "rows": rows}


def _diversity(tables: dict[str, Any] | None) -> dict[str, Any]:
    from echocaptions.metrics.tables import SUMMARY_HEAD, summary_table

    if not tables:
        return {"main": [], "more": []}

    def table(grouping: str, title: str) -> dict[str, Any]:
        return {"key": grouping.replace("/", "-"), "title": title, "head": SUMMARY_HEAD,
                "rows": summary_table(tables, grouping)}

    main = [table(g, t) for g, t in (("strategy", "By caption strategy"),
                                     ("caption_source", "By caption source")) if g in tables]
    more = [table(g, f"By {g.replace('_', ' ')}") for g in sorted(tables)
            if g not in ("strategy", "caption_source")]
    return {"main": main, "more": more}


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _plots(scan: _Scan, tables: dict[str, Any] | None, organs: list[str], splits: list[str]) -> dict:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    def figure(width: float, height: float, cols: int = 1):
        fig = Figure(figsize=(width, height))
        FigureCanvasAgg(fig)
        return fig, fig.subplots(1, cols, squeeze=False)[0]

    plots: dict[str, str] = {}
    if scan.rows:
        fig, (ax,) = figure(6.4, 3.2)
        bottom = [0] * len(organs)
        for split in splits:
            values = [scan.split_organ[(split, o)] for o in organs]
            ax.bar(organs, values, bottom=bottom, label=split)
            bottom = [b + v for b, v in zip(bottom, values, strict=True)]
        ax.set_ylabel("rows")
        ax.legend(frameon=False)
        fig.tight_layout()
        plots["split_organ"] = _png(fig)
    strategies = (tables or {}).get("strategy") or {}
    if strategies:
        names = sorted(strategies)
        fig, axes = figure(9.6, 3.4, cols=2)
        mtld = [strategies[n]["values"].get("mtld") or 0.0 for n in names]
        axes[0].bar(names, mtld, color="#2b59c3")
        axes[0].set_title("MTLD (higher: more varied wording)")
        width = 0.38
        xs = range(len(names))
        for shift, metric, colour in ((-width / 2, "precision", "#7a8db8"), (width / 2, "recall", "#1f7a3d")):
            values = [(strategies[n].get("fidelity") or {}).get(metric) or 0.0 for n in names]
            axes[1].bar([x + shift for x in xs], values, width, label=f"findings {metric}", color=colour)
        axes[1].set_xticks(list(xs), names)
        axes[1].set_ylim(0, 1.3)
        axes[1].set_yticks([0, 0.25, 0.5, 0.75, 1.0])
        axes[1].set_title("Findings fidelity")
        axes[1].legend(frameon=False, loc="upper center", ncols=2)
        for ax in axes:
            ax.tick_params(axis="x", labelrotation=20)
        fig.tight_layout()
        plots["strategy"] = _png(fig)
    if scan.lengths:
        fig, (ax,) = figure(6.4, 3.4)
        longest = max(max(c) for c in scan.lengths.values())
        bins = list(range(0, longest + 2))
        for source in sorted(scan.lengths):
            counter = scan.lengths[source]
            lengths = sorted(counter)
            ax.hist(lengths, bins=bins, weights=[counter[n] for n in lengths], histtype="stepfilled",
                    alpha=0.5, label=f"{source} ({sum(counter.values())})")
        ax.set_xlabel("tokens per chosen caption")
        ax.set_ylabel("rows")
        ax.set_title("Caption length by caption source")
        ax.legend(frameon=False)
        fig.tight_layout()
        plots["lengths"] = _png(fig)
    return plots


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("echocaptions")
    except PackageNotFoundError:
        return "unknown"


@functools.lru_cache(maxsize=1)
def _template() -> Template:
    """The page template (``publish/templates/``), loaded once, autoescaped, strict about names."""
    from jinja2 import Environment, PackageLoader, StrictUndefined

    env = Environment(
        loader=PackageLoader("echocaptions.publish", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        keep_trailing_newline=True,
    )
    return env.get_template(TEMPLATE_NAME)


def render_report(out: Path, per_class: int = 6, *, batch_size: int = 1024) -> str:
    """The report's HTML for the build in ``out`` (see :func:`write_report`)."""
    out = Path(out)
    if per_class < 0:
        raise ReportError(f"per_class must be 0 or more, not {per_class}")
    build = open_build(out, error=ReportError)
    shards = build.all_shards
    stats = build.stats()
    tables = build.diversity()

    scan = _scan(shards, per_class, batch_size)
    items = _load_sample(shards, scan)
    organs = _organ_order(scan.organ)
    splits = _split_order(scan.split)
    labels = sorted(scan.label, key=lambda ol: (organs.index(ol[0]), _label_order(*ol)))

    count_tables = [
        _count_table("organ", "By organ", "organ", scan.organ, organs),
        _count_table("dataset", "By dataset", "dataset", scan.dataset, sorted(scan.dataset)),
        _count_table("split", "By split", "split", scan.split, splits),
        _count_table("label", "By label (organ / label)", "organ / label",
                     {f"{o}/{la}": n for (o, la), n in scan.label.items()},
                     [f"{o}/{la}" for o, la in labels]),
        _count_table("caption_source", "By caption source (chosen caption)", "caption source",
                     scan.caption_source, sorted(scan.caption_source)),
        _count_table("candidates", "Caption candidates by source", "candidate source",
                     scan.candidates, sorted(scan.candidates)),
    ]
    cross = {
        "columns": organs,
        "rows": [{"name": s, "cells": [scan.split_organ[(s, o)] for o in organs], "total": scan.split[s]}
                 for s in splits],
        "totals": [scan.organ[o] for o in organs],
        "total": scan.rows,
    }
    label_split = {
        "columns": splits,
        "rows": [{"name": f"{o}/{la}", "cells": [scan.label_split[(o, la, s)] for s in splits],
                  "total": scan.label[(o, la)]} for o, la in labels],
    }
    gallery = []
    for organ in organs:
        groups = []
        for o, label in labels:
            if o != organ:
                continue
            chosen = sorted(scan.sample.get((o, label), []), key=lambda e: -e[0])
            groups.append({"label": label, "total": scan.label[(o, label)],
                           "rows": [items[row_id] for _, row_id, _, _ in chosen]})
        gallery.append({"name": organ, "labels": groups})

    warnings = []
    if stats.get("rows") is not None and stats["rows"] != scan.rows:
        warnings.append(f"stats.json counts {stats['rows']} rows but the Parquet shards hold {scan.rows}.")
    reports_stats = stats.get("reports") or {}
    reports = []
    for key, title in (("languages", "Report languages"), ("phi_removed", "PHI spans removed, by kind")):
        if reports_stats.get(key):
            reports.append({"key": key, "title": title, "rows": sorted(reports_stats[key].items())})
    if reports_stats.get("processed") is not None:
        reports.insert(0, {"key": "processed", "title": "Reports processed",
                           "rows": [("reports", reports_stats["processed"])]})

    recipe = stats.get("recipe") or out.name
    return _template().render(
        title=f"echocaptions dataset report: {recipe}",
        subtitle=f"{scan.rows} rows from {len(scan.dataset)} datasets, {len(organs)} organs; "
                 f"seed {stats.get('seed', '–')}",
        version=_version(),
        folder_name=out.resolve().name,
        rows=scan.rows,
        splits=[(s, scan.split[s]) for s in splits],
        read=stats.get("read", "–"),
        rejected=stats.get("rejected", "–"),
        warnings=warnings,
        sources=[
            {"name": name, "layout": s.get("layout", ""), "role": s.get("role", ""), "read": s.get("read", "–"),
             "kept": s.get("kept", "–"), "unlabelled": s.get("unlabelled", 0), "rejected": s.get("rejected", "–")}
            for name, s in sorted((stats.get("sources") or {}).items())
        ],
        notices=[
            {"source": name, "message": message}
            for name, messages in sorted((stats.get("notices") or {}).items())
            for message in messages
        ],
        count_tables=count_tables,
        cross=cross,
        label_split=label_split,
        leakage=_leakage(stats),
        diversity=_diversity(tables),
        plots=_plots(scan, tables, organs, splits),
        rejects=_rejects(build, stats.get("rejected")),
        reports=reports,
        per_class=per_class,
        gallery=gallery,
        gallery_count=sum(len(g["rows"]) for organ in gallery for g in organ["labels"]),
    )


def write_report(out: Path, per_class: int = 6, *, batch_size: int = 1024) -> Path:
    """Write ``out/report.html`` for the build in ``out`` and return its path.

    ``per_class`` bounds the gallery: at most that many rows per organ and label.
    Raises :class:`ReportError` when ``out`` is not a finished build.
    """
    out = Path(out)
    html = render_report(out, per_class, batch_size=batch_size)
    path = out / REPORT_NAME
    write_text(path, html)
    return path
