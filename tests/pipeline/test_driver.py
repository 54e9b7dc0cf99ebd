"""The stage driver: todo and done, resume, stale files, failures and timing, for any stage."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from echocaptions.driver import ShardStage, StageError, Stopwatch, done_result, run_stage
from echocaptions.executors import LocalExecutor
from echocaptions.io import write_text


@dataclass(frozen=True)
class CopyTask:
    index: int
    source: str
    out_path: str
    done_path: str


def copy_upper(task: CopyTask) -> dict:
    """A shard's work: its input in upper case; the result names the process that ran it."""
    text = Path(task.source).read_text()
    write_text(task.out_path, text.upper())
    return {"chars": len(text), "lines": text.count("\n")}


def failing(task: CopyTask) -> dict:
    if task.index == 1:
        raise ValueError("shard 1 cannot be read")
    return copy_upper(task)


class CopyStage(ShardStage[CopyTask]):
    name = "copy"

    def __init__(self, folder: Path, work=copy_upper, log: list[str] | None = None) -> None:
        super().__init__(folder, work)
        self.log = log if log is not None else []

    def plan(self, sources: list[Path]) -> list[CopyTask]:
        return [
            CopyTask(i, str(src), str(self.folder / f"{i:05d}.txt"), str(self.folder / f"{i:05d}.done"))
            for i, src in enumerate(sources)
        ]

    def fingerprint(self, task: CopyTask) -> str:
        return hashlib.sha256(Path(task.source).read_bytes()).hexdigest()

    def outputs(self, task: CopyTask) -> tuple[str, ...]:
        return (task.out_path,)

    def still_valid(self, task: CopyTask, result: dict) -> bool:
        return Path(task.out_path).read_text() == Path(task.source).read_text().upper()

    def items(self, results) -> int:
        return sum(r["lines"] for r in results)

    def after(self, finished, failed: bool) -> None:
        self.log.append(f"after {[t.index for t in finished]} failed={failed}")

    def explain(self, exc: Exception) -> str | None:
        return f"{exc}; fix the input and rerun" if isinstance(exc, ValueError) else None


class Bars:
    """A progress factory that records what each bar was told."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, int, list[int]]] = []

    def __call__(self, total: int, desc: str):
        updates: list[int] = []
        self.seen.append((desc, total, updates))

        class Bar:
            def update(self, n: int = 1) -> None:
                updates.append(n)

            def close(self) -> None: ...

        return Bar()


def _inputs(tmp_path: Path, n: int = 4) -> list[Path]:
    folder = tmp_path / "in"
    folder.mkdir(exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / f"{i}.txt"
        path.write_text(f"shard {i}\n" * (i + 1))
        paths.append(path)
    return paths


@pytest.mark.parametrize("workers", [1, 2])
def test_a_second_run_resumes_every_shard_and_gives_the_same_results(tmp_path: Path, workers: int) -> None:
    stage = CopyStage(tmp_path / "out")
    tasks = stage.plan(_inputs(tmp_path))
    bars, clock = Bars(), Stopwatch()
    with LocalExecutor(workers) as executor:
        first = run_stage(stage, tasks, executor, bars, clock)
        second = run_stage(stage, tasks, executor, bars)
    assert first.shards == 4 and first.resumed == 0
    assert second.resumed == 4
    assert first.results == second.results == [{"chars": 8 * (i + 1), "lines": i + 1} for i in range(4)]
    assert Path(tasks[2].out_path).read_text() == "SHARD 2\n" * 3
    assert json.loads(Path(tasks[2].done_path).read_text())["result"] == {"chars": 24, "lines": 3}
    assert first.time.items == 1 + 2 + 3 + 4 and first.time.wall_seconds > 0
    assert clock.times["copy"] is first.time
    assert bars.seen[0][:2] == ("copy", 4) and sum(bars.seen[0][2]) == 4
    assert bars.seen[1][2] == [4], "a resumed stage reports its done shards at once"


def test_changed_input_stale_files_and_broken_outputs_are_redone(tmp_path: Path) -> None:
    log: list[str] = []
    stage = CopyStage(tmp_path / "out", log=log)
    inputs = _inputs(tmp_path, 5)
    with LocalExecutor(1) as executor:
        run_stage(stage, stage.plan(inputs), executor, Bars())
        inputs[0].write_text("changed\n")  # its fingerprint changes
        Path(stage.plan(inputs)[1].done_path).write_text("{not json")  # a torn marker
        Path(stage.plan(inputs)[2].out_path).write_text("edited by hand")  # fails still_valid
        Path(stage.plan(inputs)[3].out_path).unlink()  # an output gone
        leftover = stage.folder / ".00004.txt.host.123.abcd.tmp"  # a killed attempt's temporary file
        leftover.write_text("half")
        tasks = stage.plan(inputs)[:4]  # shard 4 is no longer planned
        again = run_stage(stage, tasks, executor, Bars())
    assert again.resumed == 0
    assert again.results[0] == {"chars": 8, "lines": 1}
    assert not leftover.exists()
    assert sorted(p.name for p in stage.folder.iterdir()) == [
        f"0000{i}.{ext}" for i in range(4) for ext in ("done", "txt")
    ]
    assert all(done_result(stage, t) is not None for t in tasks)
    assert log[-1] == "after [0, 1, 2, 3] failed=False"


@pytest.mark.parametrize("workers", [1, 2])
def test_a_failing_shard_is_explained_and_finished_shards_stay_done(tmp_path: Path, workers: int) -> None:
    log: list[str] = []
    stage = CopyStage(tmp_path / "out", work=failing, log=log)
    tasks = stage.plan(_inputs(tmp_path, 2))
    with LocalExecutor(workers) as executor, pytest.raises(StageError, match="shard 1 cannot be read; fix the input"):
        run_stage(stage, tasks, executor, Bars())
    assert log[-1].endswith("failed=True")
    assert done_result(stage, tasks[1]) is None
    with LocalExecutor(1) as executor:
        rerun = run_stage(CopyStage(tmp_path / "out"), tasks, executor, Bars())
    if workers == 1:
        assert rerun.resumed == 1, "shard 0 finished before shard 1 failed"
    assert rerun.results == [{"chars": 8, "lines": 1}, {"chars": 16, "lines": 2}]


def test_an_unexplained_error_propagates_as_it_is(tmp_path: Path) -> None:
    class Strict(CopyStage):
        def explain(self, exc: Exception) -> str | None:
            return None

    stage = Strict(tmp_path / "out", work=failing)
    with LocalExecutor(1) as executor, pytest.raises(ValueError, match="shard 1"):
        run_stage(stage, stage.plan(_inputs(tmp_path, 2)), executor, Bars())
