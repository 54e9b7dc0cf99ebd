"""torchrun with two CPU processes (gloo): features are gathered, so the loss is the global batch's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.train_min.conftest import run_cli

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


def test_two_processes_train_on_gathered_features(demo_build: Path, tmp_path: Path) -> None:
    args = ["--data", str(demo_build), "--model", "tiny-vit", "--strategies", "template_only", "--epochs", "1",
            "--batch-size", "64", "--augment", "none", "--eval-sets", "test", "--device", "cpu"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
         "train_min/run.py", *args, "--out", str(tmp_path / "ddp")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    ddp = json.loads((tmp_path / "ddp" / "summary.json").read_text())
    assert ddp["world_size"] == 2 and ddp["config"]["world_size"] == 2
    log = ddp["train"]["template_only:clip:full-seed0"]
    assert log["world_size"] == 2
    assert log["loss_batch"] == 64  # each process held 32 pairs; the loss compared all 64
    assert (tmp_path / "ddp" / "summary.md").exists() and (
        tmp_path / "ddp" / "run-template_only-clip-full-seed0.json"
    ).exists()

    assert run_cli(*args, "--out", str(tmp_path / "one")) == 0
    one = json.loads((tmp_path / "one" / "summary.json").read_text())["train"]["template_only:clip:full-seed0"]
    assert one["loss_batch"] == 64 and one["order"] == log["order"]
    # the mean of the two processes' local losses over gathered features is the loss of the whole batch
    assert log["first_loss"] == pytest.approx(one["first_loss"], rel=1e-4)
