"""The contrastive training loop: uint8 images from the cache, pre-tokenised captions, ClipLoss.

Data order comes from a ``torch.Generator`` seeded by the run's seed and is
drawn the same way for every strategy, so strategies differ in their captions
only. Which of a row's K captions a ``*_multi`` strategy uses at a step comes
from a second generator, so sampling never shifts the data order. Under
``torchrun`` each process takes its slice of every global batch and the loss
gathers features from all processes (open_clip's ClipLoss with gather), which
makes the loss that of the global batch.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class TrainConfig:
    epochs: int
    batch_size: int  # global: split over the processes of a distributed run
    lr: float
    weight_decay: float = 0.1
    warmup: float = 0.1  # share of steps with a linear warm-up
    augment: bool = False  # random resized crop (scale 0.8-1) per image
    precision: str = "fp32"  # or "amp": autocast to bf16 (fp16 with a grad scaler where bf16 is missing)
    seed: int = 0
    # Peak learning rates per part (None: ``lr``): the image tower and the text tower where their weights
    # were loaded from a checkpoint, and every freshly initialised parameter (all of a model from scratch).
    lr_image: float | None = None
    lr_text: float | None = None
    lr_new: float | None = None
    select_best: bool = False  # keep the epoch with the lowest validation loss (else the last)

    def peak_lr(self, part: str) -> float:
        value = {"image": self.lr_image, "text": self.lr_text, "new": self.lr_new}[part]
        return self.lr if value is None else value


@dataclass
class TrainLog:
    epoch_loss: list[float] = field(default_factory=list)
    steps: int = 0
    samples: int = 0
    seconds: float = 0.0
    first_loss: float | None = None  # loss of the first global batch, before any update
    loss_batch: int | None = None  # columns of the first step's logits: the batch the loss saw
    world_size: int = 1
    order: str = ""  # digest of each epoch's row order: equal for runs that drew the same order
    val_loss: list[float] = field(default_factory=list)  # per epoch, when the best epoch is chosen
    best_epoch: int | None = None  # 1-based epoch whose weights were kept (None: the last)
    lr: dict[str, float] = field(default_factory=dict)  # peak learning rate per parameter group

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["samples_per_s"] = self.samples / self.seconds if self.seconds else None
        return out


@dataclass
class Dist:
    """Rank and world size of this process (1 process without torchrun)."""

    rank: int = 0
    world_size: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0


class TextBank:
    """Every caption of a strategy tokenised once; row ``r`` owns ``K_r`` consecutive entries."""

    def __init__(self, texts: Sequence[Sequence[str]], tokenize: Any) -> None:
        flat = [t for row in texts for t in row]
        unique = list(dict.fromkeys(flat))
        index = {t: i for i, t in enumerate(unique)}
        self.tokens = tokenize(unique)
        self.entries = torch.tensor([index[t] for t in flat], dtype=torch.long)
        self.counts = torch.tensor([len(row) for row in texts], dtype=torch.long)
        self.starts = torch.cumsum(self.counts, 0) - self.counts

    def pick(self, rows: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """Token rows for a batch: one caption per row, drawn uniformly when it has several."""
        draw = torch.rand(len(rows), generator=generator) if generator is not None else torch.zeros(len(rows))
        offset = (draw * self.counts[rows]).long().clamp_max(self.counts[rows] - 1)
        return self.tokens[self.entries[self.starts[rows] + offset]]

    @property
    def mean_k(self) -> float:
        return float(self.counts.float().mean())


def autocast_dtype(device: torch.device) -> torch.dtype:
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        return torch.float16
    return torch.bfloat16


def to_input(
    batch: np.ndarray | torch.Tensor, mean: torch.Tensor, std: torch.Tensor, device: torch.device
) -> torch.Tensor:
    """uint8 ``(B, 3, S, S)`` to the normalised float input of the model."""
    x = torch.as_tensor(np.ascontiguousarray(batch)).to(device, non_blocking=True)
    return x.float().div_(255.0).sub_(mean).div_(std)


def random_resized_crop(
    x: torch.Tensor, generator: torch.Generator, scale: tuple[float, float] = (0.8, 1.0)
) -> torch.Tensor:
    """A light augmentation: each image cropped to 80-100 % of its area (aspect 3:4-4:3) and resized back.

    One affine resampling of the whole batch (a crop box per image), not a loop
    over images: on two cores a loop cost a fifth of the training speed.
    """
    n = x.shape[0]
    u = torch.rand(n, 4, generator=generator)
    area = scale[0] + (scale[1] - scale[0]) * u[:, 0]
    log_ratio = math.log(3 / 4) + (math.log(4 / 3) - math.log(3 / 4)) * u[:, 1]
    ratio = torch.exp(log_ratio)
    sx = torch.sqrt(area * ratio).clamp(max=1.0)  # crop width / image width
    sy = torch.sqrt(area / ratio).clamp(max=1.0)
    cx = (2 * u[:, 2] - 1) * (1 - sx)  # crop centre, normalised to [-1, 1], box inside the image
    cy = (2 * u[:, 3] - 1) * (1 - sy)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2], theta[:, 1, 1], theta[:, 1, 2] = sx, cx, sy, cy
    grid = F.affine_grid(theta.to(x.device, x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def batches(n: int, batch_size: int, world_size: int, generator: torch.Generator,
            digest: Any = None) -> list[torch.Tensor]:
    """One epoch of global batches over ``n`` rows, each cut to a multiple of the world size.

    Every process gathers equal shares for the loss, so a last batch that does
    not split evenly loses its remainder rows; a batch of one row is dropped
    (a contrastive loss needs a negative). ``digest`` (a hashlib object) takes
    the epoch's order before any cut: the same for every world size.
    """
    order = torch.randperm(n, generator=generator)
    if digest is not None:
        digest.update(order.numpy().tobytes())
    out = []
    for start in range(0, n, batch_size):
        chunk = order[start : start + batch_size]
        keep = len(chunk) - len(chunk) % world_size
        if keep >= 2:
            out.append(chunk[:keep])
    return out


def part_of(name: str, loaded: set[str] | frozenset[str] | None) -> str:
    """``image`` / ``text`` for a parameter loaded from trained weights, ``new`` for a fresh one."""
    if loaded is not None and name not in loaded:
        return "new"
    return "image" if name.startswith("visual.") else "text"


def _param_groups(model: nn.Module, weight_decay: float, cfg: TrainConfig | None = None,
                  loaded: set[str] | frozenset[str] | None = None) -> list[dict[str, Any]]:
    """Groups by part (image, text, new) and decay; no weight decay on gains, biases, embeddings of one
    dimension and the logit scale. Each group keeps its peak learning rate in ``peak_lr``."""
    groups: dict[tuple[str, bool], list[nn.Parameter]] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        decay = not (param.ndim < 2 or "logit_scale" in name or "embedding" in name)
        part = part_of(name, loaded) if cfg is not None else "new"
        groups.setdefault((part, decay), []).append(param)
    out = []
    for (part, decay), params in sorted(groups.items()):
        group = {"params": params, "weight_decay": weight_decay if decay else 0.0, "part": part}
        if cfg is not None:
            group["peak_lr"] = group["lr"] = cfg.peak_lr(part)
        out.append(group)
    return out


def _schedule(step: int, total: int, warmup: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1 + math.cos(math.pi * progress))


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if hasattr(model, "module") else model


def train(
    model: nn.Module,
    images: np.ndarray,
    rows: np.ndarray,
    bank: TextBank,
    cfg: TrainConfig,
    device: torch.device,
    mean: Sequence[float],
    std: Sequence[float],
    dist: Dist | None = None,
    loaded: set[str] | frozenset[str] | None = None,
    val: tuple[np.ndarray, TextBank] | None = None,
) -> TrainLog:
    """Train ``model`` in place on ``images[rows]`` paired with captions from ``bank`` (row order).

    ``loaded``: names of parameters that came from trained weights (their part's
    learning rate applies; the others take ``lr_new``). ``val``: validation rows
    and captions; with ``cfg.select_best`` the weights of the epoch with the
    lowest validation loss are kept.
    """
    from open_clip.loss import ClipLoss

    dist = dist or Dist()
    order_gen = torch.Generator().manual_seed(cfg.seed)
    caption_gen = torch.Generator().manual_seed(cfg.seed + 1_000_003)
    augment_gen = torch.Generator().manual_seed(cfg.seed + 2_000_003 + dist.rank)
    mean_t = torch.tensor(mean, device=device).view(1, 3, 1, 1)
    std_t = torch.tensor(std, device=device).view(1, 3, 1, 1)
    loss_fn = ClipLoss(local_loss=True, gather_with_grad=True, rank=dist.rank, world_size=dist.world_size)
    optimizer = torch.optim.AdamW(_param_groups(_unwrap(model), cfg.weight_decay, cfg, loaded), lr=cfg.lr,
                                  betas=(0.9, 0.98), eps=1e-6)
    steps_per_epoch = len(batches(len(rows), cfg.batch_size, dist.world_size, torch.Generator().manual_seed(0)))
    total = max(1, steps_per_epoch * cfg.epochs)
    warmup = max(1, int(cfg.warmup * total))
    amp = cfg.precision == "amp"
    dtype = autocast_dtype(device)
    scaler = torch.amp.GradScaler(device.type) if amp and dtype == torch.float16 else None
    log = TrainLog(world_size=dist.world_size)
    for group in optimizer.param_groups:
        log.lr[f"{group['part']}{'' if group['weight_decay'] else ' (no decay)'}"] = group["peak_lr"]
    best: tuple[float, dict[str, torch.Tensor]] | None = None
    digest = hashlib.sha256()
    model.train()
    start = time.perf_counter()
    for _ in range(cfg.epochs):
        losses = []
        for batch in batches(len(rows), cfg.batch_size, dist.world_size, order_gen, digest):
            share = len(batch) // dist.world_size
            texts = bank.pick(batch, caption_gen)
            mine = slice(dist.rank * share, (dist.rank + 1) * share)
            idx = rows[batch[mine].numpy()]
            order = np.argsort(idx)  # memory-mapped reads in file order, then back
            x = to_input(images[idx[order]], mean_t, std_t, device)[torch.as_tensor(np.argsort(order))]
            if cfg.augment:
                x = random_resized_crop(x, augment_gen)
            tokens = texts[mine].to(device, non_blocking=True)
            for group in optimizer.param_groups:
                group["lr"] = group["peak_lr"] * _schedule(log.steps, total, warmup)
            with torch.autocast(device.type, dtype=dtype) if amp else nullcontext():
                image_features, text_features, logit_scale = model(x, tokens)
            # the loss in fp32, outside autocast: logits and their softmax at full precision
            loss = loss_fn(image_features.float(), text_features.float(), logit_scale.float())
            if log.steps == 0:  # how many pairs the loss compared against: the gathered global batch
                with torch.no_grad():
                    logits = loss_fn.get_logits(image_features.float(), text_features.float(), logit_scale.float())
                log.loss_batch = int(logits[0].shape[1])
                log.first_loss = _mean_over(loss.detach(), dist)
            optimizer.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
            else:
                loss.backward()
                optimizer.step()
            with torch.no_grad():
                _unwrap(model).logit_scale.clamp_(0, math.log(100))
            losses.append(float(loss.detach()))
            log.steps += 1
            log.samples += len(batch)
        log.epoch_loss.append(float(np.mean(losses)) if losses else float("nan"))
        if cfg.select_best and val is not None and len(val[0]) >= 2:
            value = _mean_over(torch.tensor(validation_loss(_unwrap(model), images, val, cfg, device, mean_t,
                                                            std_t, loss_fn), device=device), dist)
            log.val_loss.append(value)
            if best is None or value < best[0]:
                best = (value, {k: v.detach().to("cpu", copy=True) for k, v in _unwrap(model).state_dict().items()})
                log.best_epoch = len(log.val_loss)
            model.train()
    if best is not None and log.best_epoch != len(log.epoch_loss):
        _unwrap(model).load_state_dict(best[1])
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    log.seconds = time.perf_counter() - start
    log.order = digest.hexdigest()[:16]
    model.eval()
    return log


@torch.no_grad()
def validation_loss(model: nn.Module, images: np.ndarray, val: tuple[np.ndarray, TextBank], cfg: TrainConfig,
                    device: torch.device, mean: torch.Tensor, std: torch.Tensor, loss_fn: Any) -> float:
    """Contrastive loss of the validation rows in fixed batches (first caption of each row), fp32, no augmentation."""
    from open_clip.loss import ClipLoss

    rows, bank = val
    model.eval()
    plain = ClipLoss() if getattr(loss_fn, "world_size", 1) > 1 else loss_fn
    size = max(2, min(cfg.batch_size, len(rows)))
    total, count = 0.0, 0
    for start in range(0, len(rows), size):
        batch = torch.arange(start, min(start + size, len(rows)))
        if len(batch) < 2:
            continue
        x = to_input(images[rows[batch.numpy()]], mean, std, device)
        image_features, text_features, logit_scale = model(x, bank.pick(batch, None).to(device))
        loss = plain(image_features.float(), text_features.float(), logit_scale.float())
        total += float(loss) * len(batch)
        count += len(batch)
    return total / max(1, count)


def _mean_over(value: torch.Tensor, dist: Dist) -> float:
    """The loss averaged over processes: with local losses that is the global batch's loss."""
    if dist.world_size > 1:
        import torch.distributed as tdist

        value = value.clone()
        tdist.all_reduce(value)
        value /= dist.world_size
    return float(value)
