"""Training speed of train_min against a bare open_clip loop on in-memory tensors.

    python benchmarks/train_speed.py [--model tiny] [--batch-size 64] [--steps 20] [--repeat 3]

The bare loop feeds the model float tensors that are already normalised and
tokens that are already on hand: no data loading at all, the ceiling. The
train_min loop runs its real ``train`` function on a memory-mapped uint8 image
cache (as a run does after decoding the build once) and a tokenised caption
bank, so the gap between the two is the whole cost of its data path. Both use
the same model config, initial weights, batch and optimizer settings; they run
alternately ``--repeat`` times in this process and the best of each is kept, so
background load hits both alike. Prints samples/s of each and their ratio
(the target is 0.8 or more).
"""

from __future__ import annotations

import argparse
import copy
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from train_min import models  # noqa: E402
from train_min.train import TextBank, TrainConfig, _param_groups, train  # noqa: E402

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


if __name__ == "__main__":
    main()
