"""CLIP_benchmark layout of the evaluation sets, and CLIP_benchmark itself reading them.

CLIP_benchmark runs from its own venv (``make .venv-clipbench/.ready``: clip-benchmark
1.6.2 needs numpy < 2.4); set ECHOCAPTIONS_CLIP_BENCHMARK to another
``clip_benchmark`` executable. Without one the CLI tests skip, unless
ECHOCAPTIONS_REQUIRE_CLIP_BENCHMARK=1 (``make test`` sets it) makes them fail.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from echocaptions.export import export
from echocaptions.resources import bundled_dir
from echocaptions.schema import LABEL_NAMES
from tests.export.conftest import REPO, clean_env, digests, read_samples


@pytest.fixture(scope="module")
def exported(build_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("cb") / "clip_benchmark"
    return export(build_dir, "clip_benchmark", "template_multi", dest=dest, samples_per_shard=20).dest


def labels_by_id(build_dir: Path, split: str) -> dict[str, str | None]:
    out = {}
    for shard in sorted((build_dir / "data").glob(f"{split}-*.parquet")):
        for r in pq.read_table(shard, columns=["id", "label"]).to_pylist():
            out[r["id"]] = None if r["label"] is None or r["label"] < 0 else LABEL_NAMES[r["label"]]
    return out


def test_sets_and_class_files(exported: Path, build_dir: Path) -> None:
    listed = (exported / "zeroshot" / "datasets.txt").read_text().split()
    assert listed[0] == "wds/eval_busi" and "wds/test_breast" in listed and "wds/test_lung" in listed
    retrieval = (exported / "retrieval" / "datasets.txt").read_text().split()
    assert set(listed) <= set(retrieval)
    folder = exported / "zeroshot" / "eval_busi"
    classes = json.loads((folder / "classes.json").read_text())
    assert [c["label"] for c in classes["classes"]] == ["benign", "malignant", "normal"]
    names = (folder / "classnames.txt").read_text().splitlines()
    assert names == ["a benign lesion", "a malignant lesion", "normal breast tissue"]
    templates = (folder / "zeroshot_classification_templates.txt").read_text().splitlines()
    assert templates[0] == "breast ultrasound showing {c}." and all("{c}" in t for t in templates)
    tars = sorted((folder / "test").glob("*.tar"))
    assert [t.name for t in tars] == [f"{i}.tar" for i in range(len(tars))]
    assert int((folder / "test" / "nshards.txt").read_text()) == len(tars) == 2  # 36 images, 20 per shard
    truth = labels_by_id(build_dir, "eval_busi")
    seen = {}
    for tar in tars:
        for key, parts in read_samples(tar).items():
            assert set(parts) == {"png", "cls", "json"}
            seen[key] = classes["classes"][int(parts["cls"])]["label"]
    assert seen == truth and sum(c["rows"] for c in classes["classes"]) == len(truth)


def test_retrieval_samples_carry_every_caption(exported: Path) -> None:
    tar = exported / "retrieval" / "test_thyroid" / "test" / "0.tar"
    assert (exported / "retrieval" / "test_thyroid" / "dataset_type.txt").read_text() == "retrieval\n"
    samples = read_samples(tar)
    assert samples and all(len(p["txt"].decode().splitlines()) == 4 for p in samples.values())
    assert all(json.loads(p["json"])["organ"] == "thyroid" for p in samples.values())


def test_custom_template_file_per_prompt_set(exported: Path) -> None:
    sets = sorted(p.stem for p in bundled_dir("zeroshot").glob("*.json") if "organs" in json.loads(p.read_text()))
    assert sorted(p.stem for p in (exported / "zeroshot" / "prompts").glob("*.json")) == sets
    source = json.loads((bundled_dir("zeroshot") / "ultrasound.json").read_text())["organs"]["breast"]
    table = json.loads((exported / "zeroshot" / "prompts" / "ultrasound.json").read_text())
    names = (exported / "zeroshot" / "eval_busi" / "classnames.txt").read_text().splitlines()
    assert list(table["eval_busi"]) == names
    assert len(table["eval_busi"]["a benign lesion"]) == len(source["templates"]) * len(source["classes"]["benign"])
    assert "breast ultrasound showing a benign breast mass." in table["eval_busi"]["a benign lesion"]


def test_custom_templates_are_train_mins_ensembles(exported: Path) -> None:
    from train_min.evaluate import class_prompts

    for path in sorted((exported / "zeroshot" / "prompts").glob("*.json")):
        source = json.loads((bundled_dir("zeroshot") / path.name).read_text())
        table = json.loads(path.read_text())
        for name in ("eval_busi", "test_lung", "test_thyroid"):
            info = json.loads((exported / "zeroshot" / name / "classes.json").read_text())
            dataset = info["datasets"][0] if len(info["datasets"]) == 1 else None
            for c in info["classes"]:
                assert table[name][c["classname"]] == class_prompts(source, info["organ"], c["label"], dataset)


def test_export_is_deterministic(exported: Path, build_dir: Path, tmp_path: Path) -> None:
    again = export(build_dir, "clip_benchmark", "template_multi", dest=tmp_path / "again", samples_per_shard=20).dest
    files = digests(exported, "**/*")
    assert digests(again, "**/*") == files and sum(name.endswith(".tar") for name in files) >= 10


# ---------------------------------------------------------------- CLIP_benchmark itself


def clip_benchmark_cli() -> str:
    found = os.environ.get("ECHOCAPTIONS_CLIP_BENCHMARK") or str(REPO / ".venv-clipbench" / "bin" / "clip_benchmark")
    if not Path(found).is_file():
        if os.environ.get("ECHOCAPTIONS_REQUIRE_CLIP_BENCHMARK") == "1":
            pytest.fail(f"no clip_benchmark at {found}; run `make .venv-clipbench/.ready`")
        pytest.skip(f"no clip_benchmark at {found} (make .venv-clipbench/.ready)")
    return found


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """train_min's tiny config with seeded random weights, saved as an open_clip ``local-dir:`` model."""
    import open_clip
    import torch

    folder = tmp_path_factory.mktemp("tiny_ckpt")
    tiny = json.loads((REPO / "train_min" / "configs" / "tiny.json").read_text())
    config = {"model_cfg": tiny, "preprocess_cfg": {}}
    (folder / "open_clip_config.json").write_text(json.dumps(config))
    torch.manual_seed(0)
    model = open_clip.create_model(f"local-dir:{folder}")
    torch.save(model.state_dict(), folder / "open_clip_pytorch_model.bin")
    return folder


def run_eval(exported: Path, task: str, dataset: str, model: Path, out: Path, *extra: str) -> tuple[dict, str]:
    argv = [
        clip_benchmark_cli(), "eval", "--dataset", dataset, "--dataset_root", f"{exported / task}/{{dataset}}",
        "--model", f"local-dir:{model}", "--pretrained", "none", "--output", f"{out}/{{dataset}}_{{task}}.json",
        "--num_workers", "0", "--batch_size", "16", "--no_amp", *extra,
    ]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=600, env=clean_env(), cwd=out)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    results = sorted(out.glob("*.json"))
    assert len(results) == 1, proc.stdout[-2000:]
    return json.loads(results[0].read_text()), proc.stdout


@pytest.mark.slow
def test_clip_benchmark_zero_shot_on_held_out_set(exported: Path, tiny_checkpoint: Path, tmp_path: Path) -> None:
    result, stdout = run_eval(exported, "zeroshot", "wds/eval_busi", tiny_checkpoint, tmp_path)
    assert result["dataset"] == "wds/eval_busi" and result["task"] == "zeroshot_classification"
    metrics = result["metrics"]
    assert 0.0 <= metrics["acc1"] <= 1.0 and 0.0 <= metrics["mean_per_class_recall"] <= 1.0
    classes = json.loads((exported / "zeroshot" / "eval_busi" / "classes.json").read_text())["classes"]
    support = {int(i): int(n) for i, n in re.findall(r"^\s+(\d+)\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+(\d+)$", stdout, re.M)}
    assert support == {c["index"]: c["rows"] for c in classes}  # every exported image, read with its label
    assert re.search(rf"accuracy\s+[\d.]+\s+{sum(support.values())}$", stdout, re.M)
    assert "Dataset classes: ['a benign lesion', 'a malignant lesion', 'normal breast tissue']" in stdout


@pytest.mark.slow
def test_clip_benchmark_retrieval(exported: Path, tiny_checkpoint: Path, tmp_path: Path) -> None:
    result, _ = run_eval(exported, "retrieval", "wds/test_breast", tiny_checkpoint, tmp_path,
                         "--task", "zeroshot_retrieval", "--recall_k", "1", "5")
    metrics = result["metrics"]
    assert set(metrics) == {f"{d}_retrieval_recall@{k}" for d in ("image", "text") for k in (1, 5)}
    assert all(0.0 <= v <= 1.0 for v in metrics.values())
