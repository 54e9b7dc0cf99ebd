"""open_build: a finished build's parts and lazy readers, and one error text for every reader of a non-build."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from echocaptions.cli import app
from echocaptions.export import ExportError, export
from echocaptions.publish.build import BuildFolderError, open_build
from echocaptions.publish.report_html import ReportError, write_report
from train_min.data import BuildError, load_rows


def test_a_finished_build_gives_its_parts(built: Path) -> None:
    build = open_build(built)
    stats = json.loads((built / "stats.json").read_text())
    assert build.path == built and build.stats() == stats
    assert build.splits == sorted(stats["splits"]) and build.rows_per_split == stats["splits"]
    assert build.all_shards == sorted((built / "data").glob("*.parquet"))
    assert len(build.shards["train"]) > 1  # small shards: the order within a split is the shard index
    assert build.data_files() == {s: [str(p) for p in paths] for s, paths in build.shards.items()}
    for path in (build.stats_path, build.diversity_path, build.rejects_path, build.card_path):
        assert path.is_file() and path.parent == built
    assert build.diversity() == json.loads((built / "diversity.json").read_text())
    lines = [json.loads(line) for line in (built / "rejects.jsonl").read_text().splitlines() if line.strip()]
    assert list(build.rejects()) == lines and len(lines) == stats["rejected"]
    configs = build.strategy_configs()
    assert sorted(configs) == sorted(p.name for p in (built / "strategies").iterdir())
    for shards in configs.values():
        assert {s: sum(pq.ParquetFile(p).metadata.num_rows for p in paths) for s, paths in shards.items()} == \
            stats["splits"]
    batches = list(build.batches(["id", "split"], batch_rows=7))
    assert all(b.schema.names == ["id", "split"] and b.num_rows <= 7 for b in batches)
    assert sum(b.num_rows for b in batches) == stats["rows"]
    ids = [r["id"] for r in build.rows("validation", ["id", "split"])]
    assert len(ids) == stats["splits"]["validation"]
    assert build.caption_sources() == {k: v for k, v in stats["caption_candidates"].items() if v}
    assert open_build(str(built)).fingerprint == build.fingerprint


def test_a_folder_that_is_not_a_build(tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    with pytest.raises(BuildFolderError) as err:
        open_build(missing)
    assert str(err.value).startswith(f"{missing} is not a folder: no such folder; ")
    assert f"run `echocaptions build` with `--out {missing}`" in str(err.value)
    (tmp_path / "file").write_text("")
    with pytest.raises(BuildFolderError, match="file is not a folder; run `echocaptions build`"):
        open_build(tmp_path / "file")

    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "notes.txt").write_text("")
    with pytest.raises(BuildFolderError) as err:
        open_build(folder)
    assert str(err.value) == (
        f"no build at {folder}: no stats.json (it holds: notes.txt) and no data/*.parquet in {folder}; "
        f"run `echocaptions build` with `--out {folder}` to make one there"
    )


def test_an_interrupted_build(built: Path, tmp_path: Path) -> None:
    stopped = tmp_path / "stopped"
    shutil.copytree(built, stopped)
    (stopped / "stats.json").unlink()  # a build writes it last
    with pytest.raises(BuildFolderError) as err:
        open_build(stopped)
    text = str(err.value)
    assert text.startswith(f"{stopped} is not a finished build: no stats.json (it holds: ")
    assert f"no stats.json in {stopped} means its build was stopped or is still running" in text
    assert text.endswith(f"rerun the same `echocaptions build ... --out {stopped}` to resume it")

    first = tmp_path / "first"  # a first build stopped before it published anything
    (first / ".work").mkdir(parents=True)
    with pytest.raises(BuildFolderError, match=r"no stats.json \(it holds: \.work/\); .* stopped or is still running"):
        open_build(first)

    swapping = tmp_path / "swapping"  # stats.json of one build, a shard of the next one missing
    shutil.copytree(built, swapping)
    sorted((swapping / "data").glob("train-*.parquet"))[0].unlink()
    with pytest.raises(BuildFolderError) as err:
        open_build(swapping)
    text = str(err.value)
    assert f"{swapping} is not a finished build: split 'train' has" in text
    assert "stats.json says" in text and "shards missing from the NNNNN-of-NNNNN sequence" in text
    assert text.endswith(f"--out {swapping}` to resume it")

    (swapping / "stats.json").write_text('{"splits": ')
    with pytest.raises(BuildFolderError, match=r"stats\.json: not valid JSON .* to resume it"):
        open_build(swapping)
    (swapping / "stats.json").write_bytes(b"\xff\xfe not text")
    with pytest.raises(BuildFolderError, match=r"stats\.json: not valid JSON .* to resume it"):
        open_build(swapping)

    cut = tmp_path / "cut"  # a shard the size of nothing: being written, or damaged
    shutil.copytree(built, cut)
    shard = sorted((cut / "data").glob("train-*.parquet"))[0]
    shard.write_bytes(b"")
    with pytest.raises(BuildFolderError, match=rf"{shard.name}: not a readable Parquet file .* to resume it"):
        open_build(cut)


def _not_a_build(built: Path, tmp_path: Path, kind: str) -> Path:
    folder = tmp_path / kind
    if kind == "notes":
        folder.mkdir()
        (folder / "notes.txt").write_text("")
    else:
        shutil.copytree(built, folder)
        (folder / "stats.json").unlink()
    return folder


@pytest.mark.parametrize("kind", ["notes", "stopped"])
def test_every_reader_gives_the_same_error(built: Path, tmp_path: Path, kind: str) -> None:
    folder = _not_a_build(built, tmp_path, kind)
    with pytest.raises(BuildFolderError) as expected:
        open_build(folder)
    text = str(expected.value)
    readers = [
        (ReportError, lambda: write_report(folder)),
        (ExportError, lambda: export(folder, "webdataset", "template_only", dest=tmp_path / "x")),
        (BuildError, lambda: load_rows(folder)),
    ]
    for error, read in readers:
        with pytest.raises(error) as got:
            read()
        assert isinstance(got.value, BuildFolderError) and str(got.value) == text
    for command in (["report"], ["diversity"], ["export", "--to", "csv", "--strategy", "template_only"]):
        result = CliRunner().invoke(app, [command[0], str(folder), *command[1:]])
        assert result.exit_code == 2 and f"error: {text}" in " ".join(result.output.split()), command
    assert not (tmp_path / "x").exists() and not (folder / "report.html").exists()
