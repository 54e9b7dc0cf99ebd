"""The multi-index near-duplicate search finds exactly the brute-force pairs."""

from __future__ import annotations

import numpy as np
import pytest

from echocaptions.curation.neardup import clusters, naive_pairs, near_pairs


def _hashes(n: int, planted: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.integers(-(2**63), 2**63 - 1, n, dtype=np.int64)
    flips = np.zeros(planted, dtype=np.int64)
    for k in range(planted):
        for bit in rng.choice(64, size=int(rng.integers(0, 9)), replace=False):
            flips[k] |= np.int64(1) << np.int64(bit) if bit < 63 else np.int64(-(2**63))
    return np.concatenate([base, base[:planted] ^ flips])


@pytest.mark.parametrize("max_distance", [0, 1, 3, 4, 6, 8])
def test_index_equals_brute_force(max_distance: int) -> None:
    h = _hashes(1500, 400, seed=max_distance)
    i, j = near_pairs(h, max_distance)
    assert set(zip(i.tolist(), j.tolist(), strict=True)) == naive_pairs(h, max_distance)


def test_identical_hashes_and_chains_cluster_together() -> None:
    a = np.int64(0x0F0F0F0F0F0F0F0F)
    h = np.array([a, a, a ^ 0b11, a ^ 0b1111, ~a], dtype=np.int64)
    labels = clusters(h, 2)
    assert labels[0] == labels[1] == labels[2] == labels[3]
    assert labels[4] != labels[0]
    assert len(set(clusters(h, 0).tolist())) == 4


def test_bad_threshold() -> None:
    with pytest.raises(ValueError, match="max_distance"):
        near_pairs(np.zeros(3, dtype=np.int64), 40)
