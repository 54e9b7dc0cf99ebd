"""Training speed of train_min against a bare open_clip loop on in-memory tensors.

    python benchmarks/train_speed.py [--model tiny] [--batch-size 64] [--steps 20] [--repeat 3] [--data BUILD]

The bare loop feeds the model float tensors that are already normalised and
tokens that are already on hand: no data loading at all, the ceiling. The
train_min loop runs its real ``train`` function on a memory-mapped uint8 image
cache (as a run does after decoding the build once) and a tokenised caption
bank, so the gap between the two is the whole cost of its data path. Both use
the same model config, initial weights, batch and optimizer settings; they run
alternately ``--repeat`` times in this process and the best of each is kept, so
background load hits both alike. Prints samples/s of each and their ratio
(the target is 0.8 or more).

With ``--data BUILD`` it also times one training epoch on the build's train
split against the evaluation of the same model as a baseline (every default
evaluation set, both prompt sets, probes; the target is one epoch or less),
and the peak memory of ``run.py --eval-only`` with 1 and with 4 baselines
(each baseline is created, evaluated and freed before the next: the peak
should not grow).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from train_min import data, evaluate, models  # noqa: E402
from train_min.train import TextBank, TrainConfig, _param_groups, train  # noqa: E402

REPO = Path(__file__).resolve().parent.parent

WORDS = ("breast", "thyroid", "liver", "lung", "benign", "malignant", "normal", "lesion", "nodule", "mass")


def captions(n: int, rng: np.random.Generator) -> list[list[str]]:
    return [[" ".join(rng.choice(WORDS, size=12)) + "."] for _ in range(n)]


def bare_loop(model: torch.nn.Module, images: torch.Tensor, tokens: torch.Tensor, batch: int, lr: float) -> float:
    """Samples/s of the plainest open_clip step on tensors already in memory."""
    from open_clip.loss import ClipLoss

    loss_fn = ClipLoss()
    optimizer = torch.optim.AdamW(_param_groups(model, 0.1), lr=lr, betas=(0.9, 0.98), eps=1e-6)
    model.train()
    start = time.perf_counter()
    for s in range(0, len(images), batch):
        image_features, text_features, logit_scale = model(images[s : s + batch], tokens[s : s + batch])
        loss = loss_fn(image_features, text_features, logit_scale)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return len(images) / (time.perf_counter() - start)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="tiny")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--threads", type=int, help="torch threads (default: torch's own)")
    p.add_argument("--data", type=Path, help="a build: also evaluation cost against an epoch, and peak memory")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    models.register_configs()
    initial = models.create(args.model, None, 0)
    size, mean, std = models.preprocess(initial)
    tokenize = models.tokenizer(args.model)
    n = args.batch_size * args.steps
    rng = np.random.default_rng(0)
    texts = captions(n, rng)
    bank = TextBank(texts, tokenize)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "images.npy"
        cache = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(n, 3, size, size))
        cache[:] = rng.integers(0, 256, size=cache.shape, dtype=np.uint8)
        cache.flush()
        images = np.load(path, mmap_mode="r")
        # the bare loop's inputs: the same pixels, normalised once, and the same tokens
        floats = torch.from_numpy(np.array(images)).float().div(255)
        floats = (floats - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
        tokens = bank.pick(torch.arange(n), None)
        plain = TrainConfig(epochs=1, batch_size=args.batch_size, lr=1e-4)
        cropped = TrainConfig(epochs=1, batch_size=args.batch_size, lr=1e-4, augment=True)
        rows = np.arange(n)
        speeds: dict[str, list[float]] = {"bare": [], "ours": [], "ours+crop": []}
        bare_loop(copy.deepcopy(initial), floats[: 2 * args.batch_size], tokens, args.batch_size, 1e-4)  # warm-up
        for _ in range(args.repeat):
            speeds["bare"].append(bare_loop(copy.deepcopy(initial), floats, tokens, args.batch_size, plain.lr))
            for key, cfg in (("ours", plain), ("ours+crop", cropped)):
                log = train(copy.deepcopy(initial), images, rows, bank, cfg, torch.device("cpu"), mean, std)
                speeds[key].append(log.samples / log.seconds)
    best = {k: max(v) for k, v in speeds.items()}
    print(f"model {args.model}, batch {args.batch_size}, {args.steps} steps x {args.repeat}, "
          f"{torch.get_num_threads()} threads")
    labels = {
        "bare": "bare open_clip loop (in-memory float tensors)",
        "ours": "train_min loop (uint8 memory-mapped cache)",
        "ours+crop": "train_min loop, random resized crop (default)",
    }
    for key, label in labels.items():
        runs = ", ".join(f"{v:.1f}" for v in speeds[key])
        print(f"{label:<47} {best[key]:7.1f} samples/s  (runs: {runs})")
    print(f"ratio train_min / bare: {best['ours'] / best['bare']:.2f} "
          f"(with the crop augmentation: {best['ours+crop'] / best['bare']:.2f})")
    if args.data:
        evaluation_cost(args)
        for n in (1, 4):
            print(f"run.py --eval-only with {n} baseline(s): peak memory {peak_memory(args, n):.0f} MiB")


def evaluation_cost(args: argparse.Namespace) -> None:
    """One training epoch on the build against one evaluation of the same model, best of ``--repeat``."""
    rows = data.load_rows(args.data)
    sets, _ = data.resolve_eval_sets(rows, None)
    names = data.default_strategies(rows)
    model = models.create(args.model, None, 0)
    pre = models.preprocess(model)
    prompts = {"zs": evaluate.load_prompts(evaluate.PROMPTS), "zsh": evaluate.load_prompts(evaluate.HELDOUT_PROMPTS)}
    tokenize = models.tokenizer(args.model)
    train_rows = rows.where("train")
    bank = TextBank(data.strategy_texts(rows, names[0], train_rows), tokenize)
    with tempfile.TemporaryDirectory() as tmp:
        spec = data.ImageSpec(pre.size, pre.resize_mode, pre.interpolation, pre.fill_color)
        images = data.open_image_cache(data.build_image_cache(rows, spec, Path(tmp)), rows, spec)
        cfg = TrainConfig(epochs=1, batch_size=args.batch_size, lr=1e-4, augment=True)
        epoch, evaluation = [], []
        for _ in range(args.repeat):
            log = train(copy.deepcopy(model), images, train_rows, bank, cfg, torch.device("cpu"), pre.mean, pre.std)
            epoch.append(log.seconds)
            start = time.perf_counter()
            evaluate.evaluate(model, tokenize, rows, images, sets, torch.device("cpu"), pre.mean, pre.std, prompts,
                              pair_strategies=names)
            evaluation.append(time.perf_counter() - start)
    print(f"{args.data.name}: one training epoch ({len(train_rows)} rows) {min(epoch):.2f} s; evaluation of the "
          f"model as a baseline ({len(sets)} sets, {sum(s.n_rows for s in sets)} rows) {min(evaluation):.2f} s; "
          f"ratio {min(evaluation) / min(epoch):.2f}")


PEAK = (
    "import resource, runpy, sys\n"
    "sys.argv = sys.argv[1:]\n"
    "try:\n    runpy.run_path('train_min/run.py', run_name='__main__')\n"
    "except SystemExit as end:\n    assert not end.code, end.code\n"
    "print('PEAK', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
)


def peak_memory(args: argparse.Namespace, baselines: int) -> float:
    """Peak resident memory (MiB) of an evaluation-only run with ``baselines`` baselines."""
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-c", PEAK, "run.py", "--data", str(args.data), "--eval-only", "--model",
                   args.model, "--device", "cpu", "--out", tmp, "--bootstrap", "10"]
        for i in range(baselines):
            command += ["--baseline", f"b{i}={args.model}"]
        proc = subprocess.run(command, cwd=REPO, capture_output=True, text=True, env={**os.environ})
        if proc.returncode:
            raise SystemExit(proc.stderr[-2000:])
        peak = [line for line in proc.stdout.splitlines() if line.startswith("PEAK")]
        rows = json.loads((Path(tmp) / "summary.json").read_text())["rows"]
        assert len(rows) == baselines + 1
    return int(peak[-1].split()[1]) / 1024


if __name__ == "__main__":
    main()
