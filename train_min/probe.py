"""L2-regularised logistic regression for many small probes at once.

An evaluation fits a few hundred probes on one feature matrix: every C of the
grid, every fold, every few-shot draw. Fitted one by one, each costs a few
milliseconds of per-call overhead for a problem of a few dozen rows. Here a
batch of problems shares one feature matrix ``x`` and each problem is a subset
of its rows (a boolean mask) with its own C, and all of them are solved
together by Newton's method with conjugate-gradient steps and a backtracking
line search.

Each problem is the one scikit-learn's ``LogisticRegression`` (L2, intercept
not penalised) solves on features standardised over the problem's own rows
(mean and population standard deviation; 1 where a feature is constant):

    minimise  C * sum_i loss_i + 0.5 * ||W||^2

with the logistic loss and one weight vector for two classes, and the softmax
loss with one vector per class for more. The optimum is unique, so the
coefficients equal scikit-learn's up to the solvers' tolerances
(``tests/train_min/test_probe.py`` compares them).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass
class LinearProbe:
    """One fitted probe: standardisation, then a linear map to class scores."""

    mean: np.ndarray  # (d,)
    scale: np.ndarray  # (d,)
    coef: np.ndarray  # (1, d) for two classes, else (K, d); on standardised features
    intercept: np.ndarray  # (1,) or (K,)
    classes_: np.ndarray  # (K,)

    def decision_function(self, x: np.ndarray) -> np.ndarray:
        z = ((np.asarray(x, np.float64) - self.mean) / self.scale) @ self.coef.T + self.intercept
        return z[:, 0] if len(self.classes_) == 2 else z

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        z = self.decision_function(x)
        if z.ndim == 1:
            p = 1.0 / (1.0 + np.exp(-z))
            return np.stack([1.0 - p, p], axis=1)
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.classes_[self.predict_proba(x).argmax(axis=1)]


def fit_logistic(
    x: np.ndarray,
    y: np.ndarray,
    masks: np.ndarray,
    cs: Sequence[float],
    tol: float = 1e-8,
    max_iter: int = 100,
) -> list[LinearProbe]:
    """One probe per row of ``masks``: fitted on the rows of ``x`` it marks, with labels ``y``, at ``cs[b]``.

    ``y`` holds class indices 0..K-1; every problem must see every class (a
    probe that never saw a class cannot score it). Iterates until each
    problem's gradient, divided by ``1 + C * rows``, is at most ``tol`` in
    every coordinate, or ``max_iter`` Newton steps.
    """
    masks = np.atleast_2d(np.asarray(masks, bool))
    cs_arr = np.asarray(cs, np.float64)
    y = np.asarray(y, np.int64)
    if masks.shape[1] != len(x) or len(y) != len(x) or len(cs_arr) != len(masks):
        raise ValueError(f"shapes disagree: x {np.shape(x)}, y {y.shape}, masks {masks.shape}, cs {cs_arr.shape}")
    n_classes = int(y.max()) + 1 if len(y) else 0
    for b, m in enumerate(masks):
        missing = sorted(set(range(n_classes)) - set(np.unique(y[m]).tolist()))
        if n_classes < 2 or missing:
            raise ValueError(f"probe {b}: needs rows of every class 0..{max(n_classes - 1, 1)}; missing {missing}")
    used = np.flatnonzero(masks.any(axis=0))  # only the rows some problem reads
    x, y, masks = np.asarray(x, np.float64)[used], y[used], masks[:, used]
    mean = np.stack([x[m].mean(axis=0) for m in masks])
    scale = np.stack([x[m].std(axis=0) for m in masks])
    scale = np.where(scale > 1e-12 * (1 + np.abs(mean)), scale, 1.0)
    rows = masks.sum(axis=1)
    stacked = len(masks) * int(rows.max()) * (x.shape[1] + 1)
    if stacked <= STACKED_LIMIT and stacked <= max(4 * x.size, 1 << 20):
        design: _Design = _Stacked.of(x, masks, mean, scale)
    else:
        design = _Shared.of(x, masks, mean, scale)
    theta = _solve(_Batch.of(design, y, cs_arr, n_classes), tol * (1.0 + cs_arr * rows), max_iter)
    classes = np.arange(n_classes)
    return [LinearProbe(mean[b], scale[b], theta[b, :, :-1], theta[b, :, -1], classes) for b in range(len(theta))]


# Small problems (many few-shot supports, a grid of C on a few dozen rows) are stacked: each problem's
# own rows, standardised, in one array, so a product is one batched matrix product. Problems that
# overlap much (a C grid or folds on thousands of rows) share the matrix of features instead, and each
# product standardises on the fly: stacking is used while it holds at most four times the values of
# the shared matrix (or 2^20 values) and never more than STACKED_LIMIT values (64 MiB of float64).
STACKED_LIMIT = 1 << 23


class _Design:
    """Products of a batch of standardised designs, each with a column of ones for the intercept, with
    parameters ``theta`` (B, K', d+1); rows are laid out on an axis of length ``n`` with weights ``mask``."""

    mask: np.ndarray  # (B, n) float, 1 where the row belongs to the problem
    labels: np.ndarray  # (B, n) int, positions into y

    @property
    def dims(self) -> int:  # d + 1
        raise NotImplementedError

    def forward(self, theta: np.ndarray) -> np.ndarray:  # (B, n, K')
        raise NotImplementedError

    def backward(self, r: np.ndarray) -> np.ndarray:  # r (B, n, K') -> (B, K', d+1)
        raise NotImplementedError

    def take(self, idx: np.ndarray) -> _Design:  # the problems at ``idx``
        raise NotImplementedError


@dataclass
class _Stacked(_Design):
    """Each problem's own rows, standardised and padded to the longest problem (padding weighs 0)."""

    z: np.ndarray  # (B, n, d+1)
    mask: np.ndarray
    labels: np.ndarray

    @classmethod
    def of(cls, x: np.ndarray, masks: np.ndarray, mean: np.ndarray, scale: np.ndarray) -> _Stacked:
        longest = int(masks.sum(axis=1).max())
        z = np.zeros((len(masks), longest, x.shape[1] + 1))
        mask = np.zeros((len(masks), longest))
        labels = np.zeros((len(masks), longest), np.int64)
        for b, m in enumerate(masks):
            where = np.flatnonzero(m)
            z[b, : len(where), :-1] = (x[where] - mean[b]) / scale[b]
            z[b, : len(where), -1] = 1.0
            mask[b, : len(where)] = 1.0
            labels[b, : len(where)] = where
        return cls(z, mask, labels)

    @property
    def dims(self) -> int:
        return self.z.shape[2]

    def forward(self, theta: np.ndarray) -> np.ndarray:
        return self.z @ theta.transpose(0, 2, 1)

    def backward(self, r: np.ndarray) -> np.ndarray:
        return r.transpose(0, 2, 1) @ self.z

    def take(self, idx: np.ndarray) -> _Stacked:
        return _Stacked(self.z[idx], self.mask[idx], self.labels[idx])


@dataclass
class _Shared(_Design):
    """One matrix of features for every problem; rows outside a problem weigh 0 in it."""

    x: np.ndarray  # (n, d)
    mean: np.ndarray  # (B, d)
    scale: np.ndarray  # (B, d)
    mask: np.ndarray
    labels: np.ndarray

    @classmethod
    def of(cls, x: np.ndarray, masks: np.ndarray, mean: np.ndarray, scale: np.ndarray) -> _Shared:
        return cls(x, mean, scale, masks.astype(np.float64), np.broadcast_to(np.arange(len(x)), masks.shape))

    @property
    def dims(self) -> int:
        return self.x.shape[1] + 1

    def forward(self, theta: np.ndarray) -> np.ndarray:
        ws = theta[:, :, :-1] / self.scale[:, None, :]  # (B, K', d)
        shift = theta[:, :, -1] - np.einsum("bd,bkd->bk", self.mean, ws)
        z = self.x @ ws.reshape(-1, ws.shape[-1]).T  # (n, B*K')
        return z.reshape(len(self.x), *shift.shape).transpose(1, 0, 2) + shift[:, None, :]

    def backward(self, r: np.ndarray) -> np.ndarray:
        flat = r.transpose(1, 0, 2).reshape(len(self.x), -1)  # (n, B*K')
        xr = (self.x.T @ flat).T.reshape(r.shape[0], r.shape[2], -1)  # (B, K', d)
        total = r.sum(axis=1)  # (B, K')
        gw = (xr - total[:, :, None] * self.mean[:, None, :]) / self.scale[:, None, :]
        return np.concatenate([gw, total[:, :, None]], axis=2)

    def take(self, idx: np.ndarray) -> _Shared:
        return _Shared(self.x, self.mean[idx], self.scale[idx], self.mask[idx], self.labels[idx])


@dataclass
class _Batch:
    """B problems: the loss, its gradient and Hessian products at parameters ``theta`` (B, K', d+1)."""

    design: _Design
    k: int  # 1 for two classes (one logistic), else the number of classes (softmax)
    target: np.ndarray  # (B, n, K') one-hot labels (of class 1 for two classes)
    weight: np.ndarray  # (B, n, 1): C for the problem's rows, 0 elsewhere
    penalised: np.ndarray  # (d+1,): 1 for the weights, 0 for the intercept

    @classmethod
    def of(cls, design: _Design, y: np.ndarray, cs: np.ndarray, n_classes: int) -> _Batch:
        k = 1 if n_classes == 2 else n_classes
        onehot = (y[design.labels][..., None] == np.arange(n_classes)).astype(np.float64)  # (B, n, K)
        penalised = np.ones(design.dims)
        penalised[-1] = 0.0
        return cls(design, k, onehot[..., 1:] if k == 1 else onehot, (cs[:, None] * design.mask)[..., None],
                   penalised)

    def take(self, idx: np.ndarray) -> _Batch:
        return _Batch(self.design.take(idx), self.k, self.target[idx], self.weight[idx], self.penalised)

    def gradient(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Class probabilities per row and the gradient."""
        p = self._probabilities(self.design.forward(theta))
        return p, self.design.backward(self.weight * (p - self.target)) + theta * self.penalised

    def _probabilities(self, z: np.ndarray) -> np.ndarray:
        if self.k == 1:
            return 1.0 / (1.0 + np.exp(-z))
        z = z - z.max(axis=2, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=2, keepdims=True)

    def loss(self, theta: np.ndarray) -> np.ndarray:
        z = self.design.forward(theta)
        if self.k == 1:
            rows = np.logaddexp(0.0, z) - self.target * z
        else:
            top = z.max(axis=2, keepdims=True)
            rows = (
                top + np.log(np.exp(z - top).sum(axis=2, keepdims=True)) - (z * self.target).sum(axis=2, keepdims=True)
            )
        return (self.weight * rows).sum(axis=(1, 2)) + 0.5 * (theta * theta * self.penalised).sum(axis=(1, 2))

    def hessian_product(self, p: np.ndarray, v: np.ndarray) -> np.ndarray:
        u = self.design.forward(v)
        r = p * (1 - p) * u if self.k == 1 else p * (u - (p * u).sum(axis=2, keepdims=True))
        return self.design.backward(self.weight * r) + v * self.penalised


def _solve(batch: _Batch, limit: np.ndarray, max_iter: int) -> np.ndarray:
    """Newton steps until each problem's largest gradient coordinate is at most its ``limit``; a problem
    that has converged (or can no longer decrease its loss) leaves the work of the later steps."""
    theta = np.zeros((len(limit), batch.k, batch.design.dims))
    open_ = np.ones(len(limit), bool)
    sub, sub_idx = batch, np.arange(len(limit))
    for _ in range(max_iter):
        idx = np.flatnonzero(open_)
        if len(idx) == 0:
            break
        if len(idx) != len(sub_idx):
            sub, sub_idx = batch.take(idx), idx
        t = theta[idx]
        p, grad = sub.gradient(t)
        active = np.abs(grad).max(axis=(1, 2)) > limit[idx]
        moved = _line_search(sub, t, grad, _newton_direction(sub, p, grad, active), active)
        theta[idx] = t
        open_[idx] = active & moved
    return theta


def _newton_direction(batch: _Batch, p: np.ndarray, grad: np.ndarray, active: np.ndarray) -> np.ndarray:
    """Conjugate gradients on H d = -g per problem, to a relative residual of min(0.1, sqrt(|g|)).

    Problems stop one by one; when half of those still in the work have
    stopped, the others go on as a smaller batch.
    """
    direction = np.zeros_like(grad)
    idx = np.flatnonzero(active & ((grad * grad).sum(axis=(1, 2)) > 0))
    if len(idx) == 0:
        return direction
    sub, sp = batch.take(idx), p[idx]
    d, residual = direction[idx], -grad[idx]
    search = residual.copy()
    rr = (residual * residual).sum(axis=(1, 2))
    stop = np.minimum(0.1, np.sqrt(np.sqrt(rr))) ** 2 * rr
    going = np.ones(len(idx), bool)
    for _ in range(max(10, min(200, grad[0].size))):
        h = sub.hessian_product(sp, search)
        curvature = (search * h).sum(axis=(1, 2))
        step = np.where(going, rr / np.where(curvature > 0, curvature, 1.0), 0.0)[:, None, None]
        d += step * search
        residual -= step * h
        new = (residual * residual).sum(axis=(1, 2))
        going &= new > stop
        if not going.any():
            break
        beta = np.where(going, new / np.where(rr > 0, rr, 1.0), 0.0)[:, None, None]
        search = residual + beta * search
        rr = new
        if going.sum() * 2 <= len(going):  # drop the stopped problems from the work
            direction[idx] = d
            keep = np.flatnonzero(going)
            idx, sub, sp = idx[keep], sub.take(keep), sp[keep]
            d, residual, search, rr, stop = d[keep], residual[keep], search[keep], rr[keep], stop[keep]
            going = going[keep]
    direction[idx] = d
    return direction


def _line_search(batch: _Batch, theta: np.ndarray, grad: np.ndarray, direction: np.ndarray,
                 active: np.ndarray) -> np.ndarray:
    """Armijo backtracking from the full Newton step, problem by problem (all evaluated together);
    updates ``theta`` in place.

    Returns, per problem, whether it moved: an active problem that finds no
    decrease is at the optimum to within rounding, and is left there.
    """
    start = batch.loss(theta)
    slope = (grad * direction).sum(axis=(1, 2))
    step = np.where(active, 1.0, 0.0)
    pending = active.copy()
    for _ in range(30):
        if not pending.any():
            break
        trial = batch.loss(theta + step[:, None, None] * direction)
        pending &= ~(trial <= start + 1e-4 * step * slope)
        step = np.where(pending, step * 0.5, step)
    step = np.where(pending, 0.0, step)  # no decrease found: keep the point
    theta += step[:, None, None] * direction
    return ~(active & pending)
