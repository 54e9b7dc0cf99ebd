"""open_clip's own trainer (``python -m open_clip_train.main``) on the exports, one epoch on the CPU.

The tiny model is train_min's ``tiny`` config given to open_clip as a
``local-dir:`` model folder. The batch size divides the exported sample count,
so the trainer's last log line shows every exported sample seen once.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from echocaptions.export import export
from tests.export.conftest import clean_env

pytestmark = pytest.mark.slow
PROGRESS = re.compile(r"Train Epoch: 0 \[\s*(\d+)/(\d+) \((\d+)%\)\]")


def batch_size_for(n: int) -> int:
    return next((b for b in range(48, 7, -1) if n % b == 0), 32)


def train(args: list[str], logs: Path, model: Path, batch: int) -> tuple[list[tuple[int, int]], Path]:
    argv = [
        sys.executable, "-m", "open_clip_train.main", *args, "--model", f"local-dir:{model}",
        "--device", "cpu", "--precision", "fp32", "--workers", "0", "--batch-size", str(batch),
        "--epochs", "1", "--warmup", "1", "--lr", "1e-3", "--save-frequency", "1", "--report-to", "",
        "--logs", str(logs), "--name", "run", "--log-every-n-steps", "1", "--seed", "0",
    ]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=600, env=clean_env(), cwd=logs.parent)
    log = (logs / "run" / "out.log").read_text() if (logs / "run" / "out.log").exists() else ""
    assert proc.returncode == 0, proc.stderr[-4000:]
    steps = [(int(a), int(b)) for a, b, _ in PROGRESS.findall(log)]
    return steps, logs / "run" / "checkpoints" / "epoch_1.pt"


def check_checkpoint(path: Path) -> None:
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    assert ckpt["epoch"] == 1 and any(k.endswith("logit_scale") for k in ckpt["state_dict"])


def test_webdataset_export_trains_with_open_clip(build_dir: Path, tiny_model_dir: Path, tmp_path: Path) -> None:
    result = export(build_dir, "webdataset", "report_template", splits=["train"], dest=tmp_path / "wds",
                    samples_per_shard=64)
    split = result.summary["splits"]["train"]
    n = split["samples"]
    assert n == json.loads((result.dest / "manifest.json").read_text())["summary"]["splits"]["train"]["samples"]
    batch = batch_size_for(n)
    # No --train-num-samples: the trainer takes the count from sizes.json beside the shards.
    steps, ckpt = train(["--dataset-type", "webdataset", "--train-data", str(result.dest / split["pattern"])],
                        tmp_path / "logs", tiny_model_dir, batch)
    expected = -(-n // batch) * batch
    assert steps and {total for _, total in steps} == {expected}
    assert steps[-1] == (expected, expected)
    check_checkpoint(ckpt)


def test_csv_export_trains_with_open_clip(build_dir: Path, tiny_model_dir: Path, tmp_path: Path) -> None:
    result = export(build_dir, "csv", "report_template", splits=["train"], dest=tmp_path / "csv")
    n = result.summary["splits"]["train"]["samples"]
    batch = batch_size_for(n)
    steps, ckpt = train(["--dataset-type", "csv", "--train-data", str(result.dest / "train.csv"),
                         "--csv-img-key", "filepath", "--csv-caption-key", "title"],
                        tmp_path / "logs", tiny_model_dir, batch)
    assert steps and {total for _, total in steps} == {n}
    assert steps[-1][0] == n - n % batch and (n % batch == 0 or batch == 32)
    check_checkpoint(ckpt)
