"""Report-caption throughput, as a ratio against spaCy's own sentence segmentation.

    python benchmarks/reports.py [--reports 4000] [--repeats 3]

Phantom reports (breast, thyroid, liver, lung) are captioned with
``ReportCaptioner.caption_many`` (blank English pipeline and sentencizer) on one
core, and the same texts are segmented by ``nlp.pipe`` of a bare
``spacy.blank("en")`` + sentencizer. The best of ``repeats`` runs of each is
reported; every captioner run starts fresh (its sentence memo warmed only on
other reports). The captioner runs spaCy only on the sections that can give a
caption, once per distinct section text, which is why it can outrun segmenting
the whole text.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import spacy

from echocaptions.captions.reports.caption import ReportCaptioner
from echocaptions.schema import LABELS
from echocaptions.synth.reports import make_report, sample_findings

ORGANS = ("breast", "thyroid", "liver", "lung")


def phantom_reports(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """``n`` phantom ``(report, organ)`` pairs, organs in turn."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        organ = ORGANS[i % len(ORGANS)]
        label = LABELS[organ][int(rng.integers(len(LABELS[organ])))]
        out.append((make_report(organ, label, sample_findings(organ, label, rng), rng).text, organ))
    return out


def best_rate(make: Callable[[], Callable[[], object]], n: int, repeats: int) -> float:
    """Items per second of the fastest of ``repeats`` runs, each of a fresh ``make()``."""
    best = float("inf")
    for _ in range(repeats):
        fn = make()
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return n / best


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reports", type=int, default=4000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    items = phantom_reports(args.reports)
    texts = [t for t, _ in items]
    warm = phantom_reports(200, seed=1)
    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    list(nlp.pipe(t for t, _ in warm))

    def fresh_captioner() -> Callable[[], object]:
        captioner = ReportCaptioner()
        captioner.caption_many(warm)
        return lambda: captioner.caption_many(items)

    ours = best_rate(fresh_captioner, len(items), args.repeats)
    base = best_rate(
        lambda: lambda: [list(doc.sents) for doc in nlp.pipe(texts, batch_size=256)],
        len(items),
        args.repeats,
    )
    captioner = ReportCaptioner()
    results = captioner.caption_many(items)
    captioned = sum(r.caption is not None for r in results)
    print(f"reports: {len(items)} phantom, mean {np.mean([len(t) for t in texts]):.0f} chars, "
          f"{captioned} captioned, tokenizer {captioner.counter.describe}")
    print(f"ReportCaptioner.caption_many  {ours:8.0f} reports/s")
    print(f"spaCy nlp.pipe sentences      {base:8.0f} reports/s")
    print(f"ratio (captioner / nlp.pipe)  {ours / base:8.2f}")
    return {"captioner_per_s": ours, "nlp_pipe_per_s": base, "ratio": ours / base}


if __name__ == "__main__":
    main()
