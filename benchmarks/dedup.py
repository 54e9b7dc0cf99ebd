"""Near-duplicate search: the multi-index clustering against a brute-force pass, in one run.

    python benchmarks/dedup.py [--n 100000] [--naive-n 5000] [--max-hamming 4]

Random 64-bit hashes with planted near-duplicates (a tenth of them, 0-4 bits
flipped). The naive pass compares every pair (O(n²), numpy popcount per row)
on ``--naive-n`` hashes; the index runs on the same hashes (checked to find
the same pairs) and on ``--n`` hashes, timed on one core.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from echocaptions.curation.neardup import clusters, naive_pairs, near_pairs


def planted(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.integers(-(2**63), 2**63 - 1, n - n // 10, dtype=np.int64)
    copies = base[: n // 10].copy()
    for k in range(copies.size):
        for bit in rng.choice(64, size=int(rng.integers(0, 5)), replace=False):
            copies[k] ^= np.int64(-(2**63)) if bit == 63 else np.int64(1) << np.int64(bit)
    return np.concatenate([base, copies])


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--naive-n", type=int, default=5_000)
    parser.add_argument("--max-hamming", type=int, default=4)
    args = parser.parse_args(argv)
    small = planted(args.naive_n, seed=1)
    t0 = time.perf_counter()
    expected = naive_pairs(small, args.max_hamming)
    naive_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    i, j = near_pairs(small, args.max_hamming)
    index_small_s = time.perf_counter() - t0
    assert set(zip(i.tolist(), j.tolist(), strict=True)) == expected, "index and brute force disagree"
    big = planted(args.n, seed=2)
    t0 = time.perf_counter()
    labels = clusters(big, args.max_hamming)
    index_big_s = time.perf_counter() - t0
    out = {
        "naive_n": args.naive_n,
        "naive_seconds": naive_s,
        "index_seconds_same_n": index_small_s,
        "speedup_same_n": naive_s / index_small_s,
        "n": args.n,
        "index_seconds": index_big_s,
        "clusters": int(labels.max()) + 1,
    }
    print(f"naive O(n^2) over {args.naive_n} hashes: {naive_s:.2f} s; index: {index_small_s:.3f} s "
          f"({out['speedup_same_n']:.0f}x faster, same {len(expected)} pairs)")
    print(f"index over {args.n} hashes: {index_big_s:.2f} s (target < 10 s)")
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
