"""Diversity metrics on template captions: all metrics against tokenisation alone and nltk self-BLEU.

    python benchmarks/diversity.py [--n 16000] [--nltk-n 300]

Captions come from the bundled templates over random records with every
finding set, keeping those of 21 tokens or more (about 25 on average).
``diversity`` (every metric, medical-term coverage included) is timed against
tokenising the same captions. nltk self-BLEU is O(n²), so it is timed on
``--nltk-n`` captions and extrapolated to ``--n`` by (n / nltk_n)²; the fast
self-BLEU is checked to agree with it on that subset. Single process.
"""

from __future__ import annotations

import argparse
import random
import time

from echocaptions.captions.templates import TemplateCaptioner
from echocaptions.metrics.diversity import (
    _Corpus,
    _self_bleu,
    diversity,
    names_finding,
    self_bleu,
    tokenize,
)
from echocaptions.schema import FINDINGS_BY_ORGAN, FINDINGS_VOCABULARY, LABELS, ORGANS


def template_captions(n: int, seed: int = 0, min_words: int = 0) -> tuple[list[str], list[str]]:
    """``n`` template captions (of ``min_words`` or more tokens) over random records with every
    finding and a view, and their organs."""
    captioner = TemplateCaptioner()
    rng = random.Random(seed)
    views = {o: sorted(captioner._organ(o).vocab.views) for o in ORGANS}
    captions: list[str] = []
    organs: list[str] = []
    i = 0
    while len(captions) < n:
        i += 1
        organ = rng.choice(ORGANS)
        fields = FINDINGS_BY_ORGAN[organ]
        findings = {f: rng.choice(FINDINGS_VOCABULARY[f]) for f in fields}
        view = rng.choice([None, *views[organ]])
        text = captioner.caption(record_id=f"b{i}", organ=organ, label=rng.choice(LABELS[organ]),
                                 findings=findings, view=view).text
        if len(tokenize(text)) >= min_words:
            captions.append(text)
            organs.append(organ)
    return captions, organs


def best_of(fn, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=16_000)
    parser.add_argument("--nltk-n", type=int, default=300)
    args = parser.parse_args(argv)
    captions, organs = template_captions(args.n, min_words=21)
    words = sum(len(tokenize(c)) for c in captions) / len(captions)
    diversity(captions[:50], organs[:50])
    tok_s = best_of(lambda: [tokenize(c) for c in captions])
    all_s = best_of(lambda: diversity(captions, organs), repeat=2)
    t0 = time.perf_counter()
    for text, organ in zip(captions[:500], organs[:500], strict=True):
        names_finding(text, organ)
    exact_coverage_s = (time.perf_counter() - t0) * args.n / 500
    no_cov_s = best_of(lambda: diversity(captions, term_matcher=lambda t, o: False), repeat=2)
    bleu_s = best_of(lambda: _self_bleu(_Corpus([tokenize(c) for c in captions]), 4))

    from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

    sub = captions[: args.nltk_n]
    toks = [tokenize(c) for c in sub]
    smooth = SmoothingFunction().method1
    t0 = time.perf_counter()
    nltk_value = sum(sentence_bleu(toks[:i] + toks[i + 1:], h, smoothing_function=smooth)
                     for i, h in enumerate(toks)) / len(toks)
    nltk_sub_s = time.perf_counter() - t0
    assert abs(nltk_value - self_bleu(sub)) < 1e-9, "self-BLEU disagrees with nltk"
    nltk_full_s = nltk_sub_s * (args.n / args.nltk_n) ** 2
    out = {
        "n": args.n,
        "words_per_caption": words,
        "tokenize_seconds": tok_s,
        "all_metrics_seconds": all_s,
        "all_metrics_without_coverage_seconds": no_cov_s,
        "ratio_to_tokenize": all_s / tok_s,
        "exact_coverage_extrapolated_seconds": exact_coverage_s,
        "ratio_to_tokenize_without_coverage": no_cov_s / tok_s,
        "self_bleu_seconds": bleu_s,
        "nltk_subset_n": args.nltk_n,
        "nltk_subset_seconds": nltk_sub_s,
        "nltk_extrapolated_seconds": nltk_full_s,
        "self_bleu_speedup": nltk_full_s / bleu_s,
    }
    print(f"{args.n} template captions, {words:.1f} words each")
    print(f"tokenise only: {tok_s:.3f} s; all metrics: {all_s:.3f} s "
          f"({out['ratio_to_tokenize']:.1f}x tokenisation; target <= 10x, budget 3 s)")
    print(f"(medical-term coverage estimated on 1000 sampled captions; the findings matcher on all "
          f"{args.n} would add about {exact_coverage_s:.1f} s, extrapolated from 500)")
    print(f"all metrics without medical-term coverage: {no_cov_s:.3f} s "
          f"({out['ratio_to_tokenize_without_coverage']:.1f}x tokenisation)")
    print(f"self-BLEU-4 (tokenise included): {bleu_s:.3f} s; nltk on {args.nltk_n} captions "
          f"{nltk_sub_s:.2f} s (agrees within 1e-9), extrapolated by n^2 to {args.n}: "
          f"{nltk_full_s:.0f} s -> {out['self_bleu_speedup']:.0f}x faster")
    return out


if __name__ == "__main__":
    main()
