"""Near-duplicate clusters from 64-bit perceptual hashes, without comparing all pairs.

Multi-index hashing: split each hash into ``t + 1`` blocks. Two hashes within
Hamming distance ``t`` agree exactly on at least one block (pigeonhole), so
only hashes sharing a block value are compared. Comparisons are vectorised
over sorted block values; pairs within the threshold are joined into clusters
(connected components), so near-duplicates chain: A~B and B~C put A, B, C in
one cluster.
"""

from __future__ import annotations

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

HASH_BITS = 64


def to_unsigned(hashes: np.ndarray | list[int]) -> np.ndarray:
    """Hashes as uint64 (they are stored as signed int64 in Parquet)."""
    return np.asarray(hashes, dtype=np.int64).view(np.uint64)


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.bitwise_count(np.bitwise_xor(a, b))


def _blocks(max_distance: int) -> list[tuple[int, int]]:
    """``(shift, width)`` of ``max_distance + 1`` blocks covering the 64 bits."""
    n = max_distance + 1
    widths = [HASH_BITS // n + (1 if i < HASH_BITS % n else 0) for i in range(n)]
    out, shift = [], 0
    for width in widths:
        out.append((shift, width))
        shift += width
    return out


def near_pairs(hashes: np.ndarray, max_distance: int) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs ``(i, j)``, ``i < j``, whose hashes differ in at most ``max_distance`` bits."""
    if not 0 <= max_distance < HASH_BITS // 2:
        raise ValueError(f"max_distance must be in 0..{HASH_BITS // 2 - 1}, got {max_distance}")
    h = to_unsigned(hashes) if hashes.dtype != np.uint64 else hashes
    found_i: list[np.ndarray] = []
    found_j: list[np.ndarray] = []
    for shift, width in _blocks(max_distance):
        keys = (h >> np.uint64(shift)) & np.uint64((1 << width) - 1)
        order = np.argsort(keys, kind="stable")
        sorted_keys = keys[order]
        # Positions whose key run continues d places ahead; shrink as runs end.
        live = np.arange(len(order) - 1)
        d = 1
        while live.size:
            live = live[live + d < len(order)]
            live = live[sorted_keys[live] == sorted_keys[live + d]]
            if not live.size:
                break
            a, b = order[live], order[live + d]
            close = hamming(h[a], h[b]) <= max_distance
            if close.any():
                found_i.append(np.minimum(a[close], b[close]))
                found_j.append(np.maximum(a[close], b[close]))
            d += 1
    if not found_i:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty
    pairs = np.unique(np.stack([np.concatenate(found_i), np.concatenate(found_j)], axis=1), axis=0)
    return pairs[:, 0], pairs[:, 1]


def clusters(hashes: np.ndarray, max_distance: int) -> np.ndarray:
    """A cluster label per hash; equal labels are near-duplicates (transitively)."""
    n = len(hashes)
    i, j = near_pairs(np.asarray(hashes), max_distance)
    graph = coo_matrix((np.ones(len(i), dtype=np.int8), (i, j)), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    return labels


def naive_pairs(hashes: np.ndarray, max_distance: int) -> set[tuple[int, int]]:
    """All pairs by brute force (O(n²)); the reference the index is checked against."""
    h = to_unsigned(hashes) if hashes.dtype != np.uint64 else hashes
    out: set[tuple[int, int]] = set()
    for i in range(len(h)):
        close = np.nonzero(hamming(h[i], h[i + 1 :]) <= max_distance)[0]
        out.update((i, i + 1 + int(k)) for k in close)
    return out
