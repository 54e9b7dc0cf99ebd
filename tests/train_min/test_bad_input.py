"""Inputs a run cannot use fail before any training, naming what is missing and what exists."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.train_min.conftest import run_cli
from train_min.data import BuildError, Rows, resolve_eval_sets


def _fails(capsys: pytest.CaptureFixture[str], out: Path, *args: str) -> str:
    assert run_cli(*args, "--out", str(out)) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ")
    assert not list(out.glob("run-*.json")) and not (out / "cache").exists(), "trained or decoded before failing"
    return err


def test_a_strategy_without_its_captions_names_the_sources_there_are(demo_build: Path, tmp_path: Path, capsys) -> None:
    err = _fails(capsys, tmp_path, "--data", str(demo_build), "--strategies", "template_only,report_only")
    assert "'report_only' needs a caption from report" in err
    assert "train rows have none" in err
    assert "report " in err and "template " in err  # captions per source that exist
    assert "report_template, template_only, template_multi" in err  # strategies the build supports


def test_an_llm_strategy_on_a_build_without_llm_captions(demo_build: Path, tmp_path: Path, capsys) -> None:
    err = _fails(capsys, tmp_path, "--data", str(demo_build), "--strategies", "llm_only")
    assert "'llm_only' needs LLM captions" in err
    assert "would train on template captions" in err
    assert "template " in err


def test_an_unknown_strategy_lists_the_known_ones(demo_build: Path, tmp_path: Path, capsys) -> None:
    err = _fails(capsys, tmp_path, "--data", str(demo_build), "--strategies", "reports_first")
    assert "unknown caption strategy 'reports_first'" in err and "report_template" in err


def test_a_missing_checkpoint_lists_the_checkpoints_beside_it(demo_build: Path, tmp_path: Path, capsys) -> None:
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "epoch_10.pt").write_bytes(b"")
    err = _fails(capsys, tmp_path / "out", "--data", str(demo_build), "--pretrained", str(tmp_path / "ckpt" / "epoch_1.pt"))
    assert "epoch_1.pt not found" in err and "epoch_10.pt" in err


def test_a_config_open_clip_does_not_know(demo_build: Path, tmp_path: Path, capsys) -> None:
    err = _fails(capsys, tmp_path, "--data", str(demo_build), "--model", "ViT-B-61")
    assert "'ViT-B-61' is not known to open_clip" in err
    assert "tiny" in err and "ViT-B-16" in err


def test_a_text_tower_folder_that_is_missing_or_incomplete(demo_build: Path, tmp_path: Path, capsys) -> None:
    err = _fails(capsys, tmp_path / "a", "--data", str(demo_build), "--text-tower", f"hf:{tmp_path / 'bert'}")
    assert "bert does not exist" in err
    (tmp_path / "bert").mkdir()
    (tmp_path / "bert" / "config.json").write_text("{}")
    err = _fails(capsys, tmp_path / "b", "--data", str(demo_build), "--text-tower", f"hf:{tmp_path / 'bert'}")
    assert "lacks weights, tokenizer" in err and "config.json" in err


def test_a_folder_that_is_not_a_build(tmp_path: Path, capsys) -> None:
    (tmp_path / "build").mkdir()
    (tmp_path / "build" / "notes.txt").write_text("")
    err = _fails(capsys, tmp_path / "out", "--data", str(tmp_path / "build"))
    assert "no build at" in err and "notes.txt" in err


def test_an_evaluation_set_the_build_does_not_have(demo_build: Path, tmp_path: Path, capsys) -> None:
    err = _fails(capsys, tmp_path, "--data", str(demo_build), "--eval-sets", "test,busbra")
    assert "'busbra' is not in" in err
    assert "test/busi" in err and "pocus" in err


def _rows(entries: list[tuple[str, str, str, str]]) -> Rows:
    """Rows from (split, dataset, organ, label), enough for resolving evaluation sets."""
    n = len(entries)
    split, dataset, organ, label = (list(col) for col in zip(*entries, strict=True))
    return Rows(
        path=Path("build"), ids=[f"r{i}" for i in range(n)], split=split, organ=organ, label=label,
        dataset=dataset, captions=[[{"source": "template", "text": f"t{i}"}] for i in range(n)],
        findings=[{} for _ in range(n)], sha256=[f"{i}" for i in range(n)], splits={}, position=list(range(n)),
    )


ROWS = _rows([
    ("train", "a", "breast", "benign"),
    ("train", "a", "breast", "malignant"),
    ("test", "a", "breast", "benign"),
    ("test", "a", "breast", "malignant"),
    ("test", "b", "thyroid", "benign"),
    ("test", "b", "thyroid", "benign"),
    ("eval_c", "c", "lung", "covid"),
    ("eval_c", "c", "lung", "normal"),
    ("eval_d", "d", "liver", "normal"),
])


def test_a_one_class_evaluation_set_asked_for_is_an_error() -> None:
    with pytest.raises(BuildError) as err:
        resolve_eval_sets(ROWS, ["b"])
    message = str(err.value)
    assert "'b' has one class per organ (thyroid: benign)" in message
    assert "test, test/a, eval_c, a, c" in message  # the sets that have two classes


def test_one_class_sets_found_by_default_are_skipped_with_a_reason() -> None:
    sets, skipped = resolve_eval_sets(ROWS, None)
    assert [s.name for s in sets] == ["test", "test/a", "eval_c"]
    assert skipped == [
        "test/b: one class per organ (thyroid: benign), skipped",
        "eval_d: one class per organ (liver: normal), skipped",
    ]
    held_out = sets[2]
    assert held_out.indices.tolist() == [6, 7] and held_out.classes == {"lung": ["covid", "normal"]}


def test_a_dataset_name_means_its_rows_in_test_and_held_out_splits() -> None:
    sets, _ = resolve_eval_sets(ROWS, ["a", "c"])
    assert sets[0].indices.tolist() == [2, 3]  # never its train rows
    assert np.array_equal(sets[1].indices, [6, 7])
