"""An interrupted build resumes without redoing finished shards, and ends identical."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.pipeline.helpers import parquet_digests, run


class _StopAfter:
    """A progress bar that interrupts the build after ``n`` finished shards."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.seen = 0

    def __call__(self, total: int, desc: str):
        outer = self

        class Bar:
            def update(self, k: int = 1) -> None:
                outer.seen += k
                if outer.seen >= outer.n:
                    raise KeyboardInterrupt

            def close(self) -> None: ...

        return Bar()


def test_interrupted_build_resumes_from_done_shards(phantom_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "resumed"
    with pytest.raises(KeyboardInterrupt):
        run("multiorgan", phantom_root, out, progress=_StopAfter(3))
    done = sorted((out / ".work" / "staged").glob("*.done"))
    assert len(done) == 3
    assert not (out / "data").exists()
    finished = run("multiorgan", phantom_root, out)
    assert finished.stats["image_stage"]["shards_resumed"] == 3
    assert finished.stats["image_stage"]["shards"] > 3
    clean = run("multiorgan", phantom_root, tmp_path / "clean")
    assert parquet_digests(finished.out) == parquet_digests(clean.out)


def test_changed_inputs_or_options_redo_only_affected_shards(phantom_root: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(phantom_root / "DDTI", data / "DDTI")
    shutil.copytree(phantom_root / "ultrasound_reports", data / "ultrasound_reports")
    out = tmp_path / "out"
    first = run("thyroid", data, out, "output.shard_items=8", keep_work=True)
    shards = first.stats["image_stage"]["shards"]
    assert shards >= 3
    same = run("thyroid", data, out, "output.shard_items=8", keep_work=True)
    assert same.stats["image_stage"]["shards_resumed"] == shards
    resized = run("thyroid", data, out, "output.shard_items=8", "image.max_side=96", keep_work=True)
    assert resized.stats["image_stage"]["shards_resumed"] == 0
    last_case = max((data / "DDTI").glob("*.xml"), key=lambda p: int(p.stem))
    last_case.unlink()
    changed = run("thyroid", data, out, "output.shard_items=8", "image.max_side=96", keep_work=True)
    assert 0 < changed.stats["image_stage"]["shards_resumed"] < changed.stats["image_stage"]["shards"]
    clean = run("thyroid", data, tmp_path / "clean", "output.shard_items=8", "image.max_side=96")
    assert parquet_digests(changed.out) == parquet_digests(clean.out)


def test_killed_build_process_resumes(phantom_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "killed"
    def command(target: Path) -> list[str]:
        return [
            sys.executable, "-m", "echocaptions", "build", "--recipe", "multiorgan",
            "--data-root", str(phantom_root), "--out", str(target), "--workers", "2", "--quiet",
            "--set", "output.shard_items=8", "--set", "image.max_side=128",
        ]

    cmd = command(out)
    proc = subprocess.Popen(cmd, start_new_session=True)
    staged = out / ".work" / "staged"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if len(list(staged.glob("*.done"))) >= 2:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "build finished before it could be interrupted"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    before = len(list(staged.glob("*.done")))
    assert before >= 2
    subprocess.run(cmd, check=True, timeout=300)
    clean = tmp_path / "clean"
    subprocess.run(command(clean), check=True, timeout=300)
    assert parquet_digests(out) == parquet_digests(clean)
