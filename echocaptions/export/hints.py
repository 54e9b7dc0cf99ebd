"""What an export prints: counts per split or set, and the command that reads it."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any


def _q(path: Path | str) -> str:
    return shlex.quote(str(path))


def lines(dest: Path, summary: dict[str, Any]) -> list[str]:
    """Human lines: one per split or evaluation set, notes, then the commands to run."""
    fmt = summary.get("format")
    if fmt == "clip_benchmark":
        return _clip_benchmark(dest, summary)
    out = []
    for split, s in summary["splits"].items():
        where = dest / s["pattern"] if fmt == "webdataset" and s.get("pattern") else dest / s.get("csv", "")
        shards = f" in {s['shards']} shard(s)" if fmt == "webdataset" else ""
        out.append(f"{split}: {s['samples']} samples from {s['rows']} images{shards}: {where}")
        if s.get("skipped_rows"):
            out.append(f"  rows not exported: {s['skipped_rows']}")
    train = summary["splits"].get("train")
    val = summary["splits"].get("validation")
    out.append("train with open_clip (add --model, --epochs, --batch-size, --lr ... as usual):")
    out.append("  " + trainer_command(dest, summary, train, val))
    return out


def trainer_command(dest: Path, summary: dict[str, Any], train: dict | None, val: dict | None) -> str:
    args = ["python -m open_clip_train.main"]
    if summary["format"] == "webdataset":
        args.append("--dataset-type webdataset")
        if train and train.get("pattern"):
            args += [f"--train-data {_q(dest / train['pattern'])}", f"--train-num-samples {train['samples']}"]
        if val and val.get("pattern"):
            args += [f"--val-data {_q(dest / val['pattern'])}", f"--val-num-samples {val['samples']}"]
    else:
        args += ["--dataset-type csv", f"--csv-img-key {summary['csv_img_key']}",
                 f"--csv-caption-key {summary['csv_caption_key']}"]
        if train:
            args.append(f"--train-data {_q(dest / train['csv'])}")
        if val:
            args.append(f"--val-data {_q(dest / val['csv'])}")
    return " ".join(args)


def _clip_benchmark(dest: Path, summary: dict[str, Any]) -> list[str]:
    out = []
    for task in ("zeroshot", "retrieval"):
        for name, s in summary[task].items():
            classes = f", classes {', '.join(s['classes'])}" if task == "zeroshot" else ""
            out.append(f"{task}/{name}: {s['samples']} images from {s['split']} ({s['organ']}){classes}")
    out += [f"note: {n}" for n in summary.get("notes", [])]
    if summary.get("skipped_rows"):
        out.append(f"rows not exported: {summary['skipped_rows']}")
    model = "--model ViT-B-32 --pretrained CHECKPOINT.pt"
    if summary["zeroshot"]:
        out.append("zero-shot classification with CLIP_benchmark:")
        out.append(f"  clip_benchmark eval --dataset {_q(dest / 'zeroshot' / 'datasets.txt')} "
                   f"--dataset_root {_q(str(dest / 'zeroshot') + '/{dataset}')} {model} "
                   "--output 'results/{dataset}_{task}.json'")
    if summary["retrieval"]:
        out.append("retrieval:")
        out.append(f"  clip_benchmark eval --task zeroshot_retrieval --recall_k 1 5 10 "
                   f"--dataset {_q(dest / 'retrieval' / 'datasets.txt')} "
                   f"--dataset_root {_q(str(dest / 'retrieval') + '/{dataset}')} {model} "
                   "--output 'results/{dataset}_{task}.json'")
    return out
