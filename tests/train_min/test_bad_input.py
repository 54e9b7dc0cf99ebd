"""Inputs a run cannot use fail before any training, naming what is missing and what exists."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.train_min.conftest import run_cli
from tests.train_min.hub import folder_repo, open_clip_repo
from train_min.data import BuildError, Rows, check_folds, resolve_eval_sets


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
    err = _fails(
        capsys, tmp_path / "out", "--data", str(demo_build), "--pretrained", str(tmp_path / "ckpt" / "epoch_1.pt")
    )
    assert "epoch_1.pt' of tiny is neither an open_clip tag nor a file" in err and "epoch_10.pt" in err


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


def test_a_hub_model_offline_and_not_cached(demo_build: Path, hf_cache: Path, tmp_path: Path, capsys) -> None:
    open_clip_repo(hf_cache, "testorg/tiny-clip")
    err = _fails(capsys, tmp_path, "--data", str(demo_build), "--model", "hf-hub:testorg/biomed-clip")
    assert "testorg/biomed-clip has no open_clip_config.json in the Hugging Face cache" in err
    assert "HF_HUB_OFFLINE=1 forbids downloading it" in err and "unset HF_HUB_OFFLINE" in err
    assert "Repositories in the cache: testorg/tiny-clip" in err
    err = _fails(capsys, tmp_path, "--data", str(demo_build), "--baseline", "b=hf-hub:testorg/biomed-clip")
    assert "testorg/biomed-clip has no open_clip_config.json" in err


def test_an_unknown_pretrained_tag_lists_the_tags_of_the_model(demo_build: Path, tmp_path: Path, capsys) -> None:
    err = _fails(capsys, tmp_path, "--data", str(demo_build), "--model", "ViT-B-16", "--pretrained", "laion2b")
    assert "'laion2b' of ViT-B-16 is neither an open_clip tag nor a file" in err
    assert "openai" in err and "laion2b_s34b_b88k" in err


def test_a_checkpoint_that_does_not_fit_its_config(demo_build: Path, hf_cache: Path, tmp_path: Path, capsys) -> None:
    import open_clip

    from train_min import models

    models.register_configs()
    state = models.create("tiny", None, 0).state_dict()  # ResNet weights under a ViT config
    open_clip_repo(hf_cache, "testorg/mismatch", model="tiny-vit", state=state)
    err = _fails(capsys, tmp_path, "--data", str(demo_build), "--model", "hf-hub:testorg/mismatch")
    assert "does not fit model 'hf-hub:testorg/mismatch'" in err and "Missing key" in err
    assert "Fix: name the config the checkpoint was trained with" in err
    assert open_clip.get_model_config("tiny-vit") is not None


def test_a_text_tower_without_a_tokenizer(demo_build: Path, hf_cache: Path, tiny_bert: Path, tmp_path: Path,
                                          capsys) -> None:
    folder_repo(hf_cache, "testorg/bert-no-tokenizer", tiny_bert,
                skip=("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"))
    err = _fails(capsys, tmp_path, "--data", str(demo_build), "--text-tower", "hf:testorg/bert-no-tokenizer")
    assert "hf:testorg/bert-no-tokenizer has no tokenizer" in err and "Fix:" in err
    err = _fails(capsys, tmp_path, "--data", str(demo_build), "--text-tower", "clip,hf:testorg/absent-bert")
    assert "testorg/absent-bert has no config.json in the Hugging Face cache" in err


def test_a_held_out_set_too_small_for_the_folds(study_build: Path, tmp_path: Path, capsys) -> None:
    err = _fails(capsys, tmp_path, "--data", str(study_build), "--folds", "20")
    assert "held-out set eval_aul is too small for 20 stratified folds" in err
    assert "has 12 rows" in err and "Fix: --folds 12 or fewer" in err


def test_a_study_file_with_an_unknown_option(demo_build: Path, tmp_path: Path, capsys) -> None:
    study = tmp_path / "study.json"
    study.write_text(json.dumps({"data": str(demo_build), "text_towers": ["clip"]}))
    err = _fails(capsys, tmp_path / "out", "--study", str(study))
    assert "unknown option 'text_towers'" in err and "text_tower" in err


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


def test_folds_need_every_class_of_a_held_out_set_that_often() -> None:
    sets, _ = resolve_eval_sets(ROWS, ["eval_c", "test"])
    check_folds(ROWS, sets[1:], 5)  # test sets fit their probes on the train split: no folds
    with pytest.raises(BuildError, match="eval_c has a class with 1 row: no stratified folds possible"):
        check_folds(ROWS, sets, 2)


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
