"""Models from where researchers keep them, offline: a Hugging Face cache under a temporary HF_HOME.

Tiny open_clip models and a tiny BERT are saved in the cache layout huggingface_hub writes; with
HF_HUB_OFFLINE=1 they load through ``hf-hub:ORG/NAME``, an open_clip pretrained tag and
``--text-tower hf:ORG/NAME`` exactly as after a download.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.train_min.conftest import REPO
from tests.train_min.hub import folder_repo, open_clip_repo
from train_min import data, evaluate, models
from train_min import run as run_module

CLIP = models.TextTower("clip")
HUB_PREPROCESS = {"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25], "resize_mode": "squash",
                  "interpolation": "bilinear"}


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_an_open_clip_model_on_the_hub_loads_offline_with_its_own_preprocessing(hf_cache: Path, tmp_path: Path) -> None:
    state = open_clip_repo(hf_cache, "testorg/tiny-clip", preprocess=HUB_PREPROCESS, safetensors=True)
    resolved = models.resolve("hf-hub:testorg/tiny-clip", None, CLIP, tmp_path / "configs")
    assert resolved.checkpoint is not None and hf_cache in resolved.checkpoint.parents
    assert resolved.checkpoint.name == "open_clip_model.safetensors"
    assert resolved.pretrained and resolved.pretrained_towers == {"image", "text"}
    model = models.create(resolved, None, 0)
    assert _same(model.state_dict(), state)
    assert _same(models.create(resolved, None, 1).state_dict(), state)  # the seed draws nothing here
    pre = models.preprocess(model)
    assert (pre.size, pre.mean, pre.std, pre.resize_mode, pre.interpolation) == (
        64, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), "squash", "bilinear")
    # the resolved config is kept beside the results, so the run can be repeated from them
    assert json.loads((tmp_path / "configs" / f"{resolved.name}.json").read_text())["vision_cfg"]["width"] == 128


def test_a_pretrained_tag_resolves_through_open_clips_registry_to_the_cache(
        hf_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from open_clip import pretrained as registry

    models.register_configs()
    # a tag as open_clip registers OpenAI's: weights on the hub, trained with QuickGELU
    monkeypatch.setitem(registry._PRETRAINED, "tiny-vit", {
        "testtag": registry._pcfg(hf_hub="testorg/tiny-vit-testtag/", quick_gelu=True),
        "plain": registry._pcfg(hf_hub="testorg/tiny-vit-plain/"),
    })
    state = open_clip_repo(hf_cache, "testorg/tiny-vit-testtag", seed=7)
    open_clip_repo(hf_cache, "testorg/tiny-vit-plain", seed=8)
    assert models.create("tiny-vit", None, 0).visual.transformer.resblocks[0].mlp.gelu.__class__.__name__ == "GELU"

    resolved = models.resolve("tiny-vit", "testtag", CLIP, tmp_path)
    assert resolved.checkpoint is not None and "models--testorg--tiny-vit-testtag" in str(resolved.checkpoint)
    # OpenAI-style weights into a config without QuickGELU: fixed, and said so
    assert resolved.cfg["quick_gelu"] is True and resolved.name.endswith("-quickgelu")
    assert any("QuickGELU" in n for n in resolved.notes)
    model = models.create(resolved, None, 0)
    assert models.activation(model) == "QuickGELU"
    assert _same(model.state_dict(), state)
    pre = models.preprocess(model)
    assert pre.resize_mode == "shortest" and pre.mean == pytest.approx((0.48145466, 0.4578275, 0.40821073))

    plain = models.resolve("tiny-vit", "plain", CLIP, tmp_path)
    assert not plain.notes and models.activation(models.create(plain, None, 0)) == "GELU"

    with pytest.raises(models.ModelError) as err:
        models.resolve("tiny-vit", "testtg", CLIP, tmp_path)
    assert "neither an open_clip tag nor a file" in str(err.value) and "testtag, plain" in str(err.value)


def test_a_bert_text_tower_by_hub_name(hf_cache: Path, tiny_bert: Path, tmp_path: Path) -> None:
    import transformers

    folder_repo(hf_cache, "testorg/tiny-bert", tiny_bert)
    tower = models.parse_text_tower("hf:testorg/tiny-bert")
    assert tower.kind == "hf" and tower.folder is None and tower.label == "hf:testorg/tiny-bert"
    resolved = models.resolve("tiny", None, tower, tmp_path)
    assert resolved.pretrained_towers == {"text"} and not resolved.pretrained
    model = models.create(resolved, None, 0)
    bert = transformers.BertModel.from_pretrained(tiny_bert).state_dict()
    ours = {k: v for k, v in model.text.transformer.state_dict().items() if k in bert}
    assert len(ours) > 10 and all(torch.equal(ours[k], bert[k]) for k in ours)
    tokens = models.tokenizer(resolved)(["breast ultrasound showing a benign lesion."])
    assert model.encode_text(tokens).shape == (1, 64)
    loaded = models.loaded_names(resolved, model)
    assert "text.transformer.embeddings.word_embeddings.weight" in loaded
    assert not any(n.startswith(("visual.", "text.proj")) for n in loaded)


def test_the_bert_arm_starts_from_the_clip_image_weights(hf_cache: Path, tiny_bert: Path, tmp_path: Path) -> None:
    clip = models.create("tiny-vit", None, 11)
    ckpt = tmp_path / "clip.pt"
    torch.save({"state_dict": clip.state_dict()}, ckpt)
    folder_repo(hf_cache, "testorg/tiny-bert", tiny_bert)
    tower = models.parse_text_tower("hf:testorg/tiny-bert")
    resolved = models.resolve("tiny-vit", str(ckpt), tower, tmp_path / "configs")
    assert resolved.checkpoint is None and resolved.image_checkpoint == ckpt
    assert resolved.pretrained_towers == {"image", "text"}
    model = models.create(resolved, None, 0)
    assert _same(model.visual.state_dict(), clip.visual.state_dict())
    loaded = models.loaded_names(resolved, model)
    assert {n for n, _ in model.named_parameters() if n not in loaded} == {
        n for n, _ in model.named_parameters() if n.startswith("text.proj") or n == "logit_scale"}
    # fine-tuning defaults: low learning rates for the loaded towers, a higher one for fresh parameters
    args = run_module.parse_args(["--data", "x"])
    cfg = run_module._train_config(args, run_module.DEVICE_DEFAULTS["cpu"], "tiny-vit", resolved, run_module.Dist())
    assert (cfg.lr_image, cfg.lr_text, cfg.lr_new, cfg.epochs, cfg.select_best) == (1e-5, 2e-5, 1e-4, 10, True)
    scratch = models.resolve("tiny-vit", None, CLIP, tmp_path)
    cfg = run_module._train_config(args, run_module.DEVICE_DEFAULTS["cpu"], "tiny-vit", scratch, run_module.Dist())
    assert (cfg.lr_image, cfg.lr_text, cfg.lr_new, cfg.epochs, cfg.select_best) == (2e-3, 2e-3, 2e-3, 20, False)
    # an explicit --pretrained-image wins over the model's weights
    other = models.create("tiny-vit", None, 12)
    torch.save({"state_dict": other.state_dict()}, tmp_path / "other.pt")
    resolved = models.resolve("tiny-vit", str(ckpt), tower, tmp_path / "configs", str(tmp_path / "other.pt"))
    assert _same(models.create(resolved, None, 0).visual.state_dict(), other.visual.state_dict())


@pytest.mark.slow
def test_eval_only_and_baselines_match_a_direct_evaluation(study_build: Path, hf_cache: Path, tmp_path: Path) -> None:
    """A child process with HF_HOME and HF_HUB_OFFLINE=1 in its environment evaluates a hub model as a
    baseline and a checkpoint with --eval-only; open_clip's own loading of the same model, evaluated
    directly, gives the same numbers."""
    import open_clip

    open_clip_repo(hf_cache, "testorg/tiny-clip", seed=5, preprocess=HUB_PREPROCESS)
    mine = models.create("tiny-vit", None, 9)
    ckpt = tmp_path / "mine.pt"
    torch.save({"state_dict": mine.state_dict()}, ckpt)
    out = tmp_path / "out"
    env = {**os.environ, "HF_HOME": str(hf_cache.parent), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "train_min/run.py", "--data", str(study_build), "--eval-only", "--model", "tiny-vit",
         "--pretrained", str(ckpt), "--baseline", "hub=hf-hub:testorg/tiny-clip", "--eval-sets", "test,eval_busi",
         "--device", "cpu", "--out", str(out)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((out / "summary.json").read_text())
    assert [r["id"] for r in result["rows"]] == ["baseline:hub", "untrained:clip"]
    assert result["rows"][1]["label"] == "initial weights, no training"
    assert not list(out.glob("run-*:*")) and not result["train"]
    md = (out / "summary.md").read_text()
    assert md.index("| **hub** |") < md.index("| initial weights, no training |")

    rows = data.load_rows(study_build)
    sets, _ = data.resolve_eval_sets(rows, ["test", "eval_busi"])
    prompts = {"zs": evaluate.load_prompts(evaluate.PROMPTS), "zsh": evaluate.load_prompts(evaluate.HELDOUT_PROMPTS)}
    strategies = result["strategies"]
    direct = {
        "baseline:hub": (open_clip.create_model("hf-hub:testorg/tiny-clip"),
                         open_clip.get_tokenizer("hf-hub:testorg/tiny-clip")),
        "untrained:clip": (open_clip.create_model("tiny-vit", pretrained=str(ckpt)),
                           open_clip.get_tokenizer("tiny-vit")),
    }
    for rid, (model, tokenize) in direct.items():
        pp = model.visual.preprocess_cfg
        if rid == "baseline:hub":
            assert pp["resize_mode"] == "squash" and tuple(pp["mean"]) == (0.5, 0.5, 0.5)
        spec = data.ImageSpec(pp["size"] if isinstance(pp["size"], int) else pp["size"][0], pp["resize_mode"],
                              pp["interpolation"], pp.get("fill_color", 0))
        images = data.open_image_cache(data.build_image_cache(rows, spec, tmp_path / "cache"), rows, spec)
        expected = evaluate.evaluate(model, tokenize, rows, images, sets, torch.device("cpu"), pp["mean"], pp["std"],
                                     prompts, seed=0, pair_strategies=strategies)
        for set_name in ("test", "eval_busi"):
            got = result["aggregate"][rid][set_name]
            want = expected[set_name]["metrics"]
            assert set(got) == set(want)
            for key, value in want.items():
                if value is None:
                    assert got[key]["mean"] is None, key
                else:
                    assert got[key]["mean"] == pytest.approx(value, abs=1e-5), (rid, set_name, key)
    assert result["sets"]["eval_busi"]["probe_protocol"] == "within-set 5-fold"
    assert np.isfinite(result["aggregate"]["baseline:hub"]["test"]["pair_policy"]["mean"])


def test_a_model_in_a_local_folder(tmp_path: Path) -> None:
    import open_clip

    models.register_configs()
    folder = tmp_path / "my-clip"
    folder.mkdir()
    state = models.create("tiny-vit", None, 4).state_dict()
    (folder / "open_clip_config.json").write_text(json.dumps(
        {"model_cfg": open_clip.get_model_config("tiny-vit"), "preprocess_cfg": {"resize_mode": "squash"}}))
    with pytest.raises(models.ModelError, match=r"has no weights .* it has: \['open_clip_config.json'\]"):
        models.resolve(f"local-dir:{folder}", None, CLIP, tmp_path)
    torch.save(state, folder / "open_clip_pytorch_model.bin")
    resolved = models.resolve(f"local-dir:{folder}", None, CLIP, tmp_path)
    model = models.create(resolved, None, 0)
    assert _same(model.state_dict(), state) and models.preprocess(model).resize_mode == "squash"
    with pytest.raises(models.ModelError, match="a local-dir model brings its own weights; drop --pretrained"):
        models.resolve(f"local-dir:{folder}", "openai", CLIP, tmp_path)
    with pytest.raises(models.ModelError, match="has no open_clip_config.json"):
        models.resolve(f"local-dir:{tmp_path}", None, CLIP, tmp_path)


def test_openai_weights_from_the_hub_or_a_file_get_quick_gelu(hf_cache: Path, tmp_path: Path) -> None:
    state = open_clip_repo(hf_cache, "testorg/tiny_vit_clip.openai", seed=2)  # its config says nn.GELU
    resolved = models.resolve("hf-hub:testorg/tiny_vit_clip.openai", None, CLIP, tmp_path)
    assert resolved.cfg["quick_gelu"] is True and "created with QuickGELU" in resolved.notes[0]
    model = models.create(resolved, None, 0)
    assert models.activation(model) == "QuickGELU" and _same(model.state_dict(), state)
    # a file named as OpenAI publishes it (openaipublic .../ViT-B-16.pt)
    torch.save(state, tmp_path / "ViT-B-16.pt")
    assert models.resolve("tiny-vit", str(tmp_path / "ViT-B-16.pt"), CLIP, tmp_path).cfg["quick_gelu"] is True
    torch.save(state, tmp_path / "mine.pt")
    assert "quick_gelu" not in models.resolve("tiny-vit", str(tmp_path / "mine.pt"), CLIP, tmp_path).cfg
