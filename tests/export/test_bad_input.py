"""Bad input fails before any work, with a message naming what exists."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from echocaptions.cli import app
from echocaptions.export import ExportError, export
from tests.export.conftest import copy_build


def run_cli(*args: str | Path) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["export", *map(str, args)])
    return result.exit_code, result.output


def test_unknown_strategy_lists_the_ones_the_build_has(build_dir: Path, tmp_path: Path) -> None:
    code, out = run_cli(build_dir, "--to", "webdataset", "--strategy", "nope", "--dest", tmp_path / "x")
    assert code == 2 and "unknown caption strategy" in out
    supported = out.split("supports:")[1].split("(")[0]
    assert "report_template" in supported and "template_multi" in supported and "llm_only" not in supported
    assert not (tmp_path / "x").exists()


def test_strategy_without_its_captions(build_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ExportError, match=r"llm_only: it needs llm captions.*report \(\d+\), template \(\d+\)"):
        export(build_dir, "webdataset", "llm_only", dest=tmp_path / "x")
    with pytest.raises(ExportError, match="--strategy is required"):
        export(build_dir, "csv", None, dest=tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_split_the_build_lacks(build_dir: Path, tmp_path: Path) -> None:
    code, out = run_cli(build_dir, "--to", "csv", "--strategy", "template_only", "--split", "train,holdout",
                        "--dest", tmp_path / "x")
    assert code == 2 and "no split 'holdout'" in out
    assert "eval_busi (36 rows)" in out and "train (" in out
    assert not (tmp_path / "x").exists()


def test_unknown_format(build_dir: Path, tmp_path: Path) -> None:
    code, out = run_cli(build_dir, "--to", "tfrecord", "--strategy", "template_only", "--dest", tmp_path / "x")
    assert code == 2 and "webdataset, csv, clip_benchmark" in out


def test_destination_inside_the_build(build_dir: Path, tmp_path: Path) -> None:
    build = copy_build(build_dir, tmp_path / "b")
    before = sorted(p.relative_to(build).as_posix() for p in build.rglob("*"))
    for dest in (build / "wds", build, build / "data" / "x"):
        with pytest.raises(ExportError, match="is inside the build"):
            export(build, "webdataset", "template_only", dest=dest)
    assert sorted(p.relative_to(build).as_posix() for p in build.rglob("*")) == before


def test_destination_not_empty(build_dir: Path, tmp_path: Path) -> None:
    dest = tmp_path / "busy"
    dest.mkdir()
    (dest / "notes.txt").write_text("mine")
    code, out = run_cli(build_dir, "--to", "webdataset", "--strategy", "template_only", "--dest", dest)
    assert code == 2 and "is not empty (it holds notes.txt)" in out
    assert sorted(p.name for p in dest.iterdir()) == ["notes.txt"]


def test_destination_holding_another_export(build_dir: Path, tmp_path: Path) -> None:
    dest = export(build_dir, "webdataset", "template_only", splits=["validation"], dest=tmp_path / "d").dest
    changed = r"holds another export \(strategy: 'template_only' there, 'report_template' now"
    with pytest.raises(ExportError, match=changed):
        export(build_dir, "webdataset", "report_template", splits=["validation"], dest=dest)
    with pytest.raises(ExportError, match=r"samples_per_shard: 1000 there, 10 now"):
        export(build_dir, "webdataset", "template_only", splits=["validation"], dest=dest, samples_per_shard=10)


def test_changed_build_is_not_resumed(build_dir: Path, tmp_path: Path) -> None:
    build = copy_build(build_dir, tmp_path / "b")
    dest = export(build, "webdataset", "template_only", splits=["validation"], dest=tmp_path / "d").dest
    stats = json.loads((build / "stats.json").read_text())
    stats["seed"] = 99
    (build / "stats.json").write_text(json.dumps(stats))
    with pytest.raises(ExportError, match="the build changed since that export"):
        export(build, "webdataset", "template_only", splits=["validation"], dest=dest)


def test_not_a_finished_build(build_dir: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "data").mkdir()
    with pytest.raises(ExportError, match=r"not a finished build: no stats.json \(it holds: data/\)"):
        export(empty, "webdataset", "template_only", dest=tmp_path / "x")
    with pytest.raises(ExportError, match="no such folder"):
        export(tmp_path / "missing", "webdataset", "template_only", dest=tmp_path / "x")

    partial = copy_build(build_dir, tmp_path / "partial")
    shard = sorted((partial / "data").glob("train-*.parquet"))[-1]
    shard.unlink()
    code, out = run_cli(partial, "--to", "webdataset", "--strategy", "template_only", "--dest", tmp_path / "x")
    assert code == 2 and "not a finished build: split 'train'" in out and "stats.json says" in out

    shutil.rmtree(partial / "data")
    with pytest.raises(ExportError, match="no data/"):
        export(partial, "webdataset", "template_only", dest=tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_clip_benchmark_prompts_missing(build_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="--prompts: not found"):
        export(build_dir, "clip_benchmark", "template_only", dest=tmp_path / "x", prompts=tmp_path / "none.json")
    other = tmp_path / "prompts"
    other.mkdir()
    (other / "readme.json").write_text('{"hello": 1}')
    with pytest.raises(ExportError, match="no zero-shot prompt set.*readme.json: no 'organs' table"):
        export(build_dir, "clip_benchmark", "template_only", dest=tmp_path / "x", prompts=other)
    assert not (tmp_path / "x").exists()
