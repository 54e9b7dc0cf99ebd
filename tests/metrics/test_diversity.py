"""Diversity metrics against lexicalrichness and nltk, and on bad input."""

from __future__ import annotations

import math
import os
import random
from concurrent.futures import ProcessPoolExecutor

import pytest

from echocaptions.captions.templates import TemplateCaptioner
from echocaptions.metrics.diversity import (
    DiversityReport,
    diversity,
    findings_fidelity,
    grouped,
    mtld,
    self_bleu,
    tokenize,
)
from echocaptions.schema import FINDINGS_BY_ORGAN, FINDINGS_VOCABULARY, LABELS, ORGANS

lexicalrichness = pytest.importorskip("lexicalrichness")
bleu_score = pytest.importorskip("nltk.translate.bleu_score")


def phantom_rows(n: int, seed: int = 0) -> list[dict]:
    """Template captions over random records."""
    captioner = TemplateCaptioner()
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        organ = rng.choice(ORGANS)
        chosen = rng.sample(FINDINGS_BY_ORGAN[organ], k=rng.randint(0, len(FINDINGS_BY_ORGAN[organ])))
        findings = {f: rng.choice(FINDINGS_VOCABULARY[f]) for f in chosen}
        label = rng.choice((None, *LABELS[organ]))
        text = captioner.caption(
            record_id=f"r{i}", organ=organ, label=label, findings=findings
        ).text
        rows.append({"caption": text, "organ": organ, "label": label, "findings": findings,
                     "caption_source": "template", "dataset": f"d{i % 2}"})
    return rows


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    return phantom_rows(1000)


def lr(tokens: list[str]):
    return lexicalrichness.LexicalRichness(tokens, preprocessor=None, tokenizer=None)


def corpus_tokens(captions: list[str]) -> list[str]:
    return [t for c in captions for t in tokenize(c)]


def _nltk_scores(toks: list[list[str]], indices: range, max_n: int) -> list[float]:
    smooth = bleu_score.SmoothingFunction().method1
    weights = (1 / max_n,) * max_n
    return [
        bleu_score.sentence_bleu(toks[:i] + toks[i + 1:], toks[i], weights=weights,
                                 smoothing_function=smooth)
        for i in indices
    ]


def nltk_self_bleu(captions: list[str], max_n: int = 4, workers: int = 1) -> float:
    """nltk sentence_bleu of each caption against all others, averaged (O(n²))."""
    toks = [tokenize(c) for c in captions]
    if workers <= 1:
        return sum(_nltk_scores(toks, range(len(toks)), max_n)) / len(toks)
    step = -(-len(toks) // workers)
    chunks = [range(i, min(i + step, len(toks))) for i in range(0, len(toks), step)]
    with ProcessPoolExecutor(workers) as pool:
        parts = pool.map(_nltk_scores, [toks] * len(chunks), chunks, [max_n] * len(chunks))
        return sum(sum(p) for p in parts) / len(toks)


def test_tokenize_keeps_terms_and_drops_punctuation() -> None:
    text = "Taller-than-wide nodule, TI-RADS TR5; multiple B-lines (1.5 cm)! COVID-19."
    assert tokenize(text) == ["taller-than-wide", "nodule", "ti-rads", "tr5", "multiple",
                              "b-lines", "1.5", "cm", "covid-19"]
    assert tokenize("-- ... ,") == []


def test_ttr_mattr_hdd_equal_lexicalrichness(rows: list[dict]) -> None:
    captions = [r["caption"] for r in rows[:300]]
    tokens = corpus_tokens(captions)
    ref = lr(tokens)
    for window, sample in ((50, 42), (17, 7), (100, 90)):
        values = diversity(captions, mattr_window=window, hdd_sample=sample).values
        assert values["ttr"] == pytest.approx(ref.ttr, rel=1e-12)
        assert values["root_ttr"] == pytest.approx(ref.rttr, rel=1e-12)
        assert values["mattr"] == pytest.approx(ref.mattr(window_size=window), rel=1e-12)
        assert values["hdd"] == pytest.approx(ref.hdd(draws=sample), rel=1e-9)
        assert values["vocabulary_size"] == ref.terms
        assert values["n_tokens"] == ref.words


def test_mtld_equals_lexicalrichness_except_all_unique(rows: list[dict]) -> None:
    captions = [r["caption"] for r in rows[:300]]
    tokens = corpus_tokens(captions)
    assert diversity(captions).values["mtld"] == pytest.approx(lr(tokens).mtld(0.72), rel=1e-12)
    rng = random.Random(3)
    for _ in range(50):
        toks = [rng.choice("abcdefghijklmnop") for _ in range(rng.randint(2, 80))]
        if len(set(toks)) == len(toks):
            continue
        for threshold in (0.72, 0.66, 0.5):
            assert mtld(toks, threshold) == pytest.approx(lr(toks).mtld(threshold), rel=1e-12)
    unique = [f"w{i}" for i in range(30)]
    assert lr(unique).mtld(0.72) == 30
    assert mtld(unique) is None
    report = diversity([" ".join(unique)])
    assert report.values["mtld"] is None and "unique" in report.notes["mtld"]


def test_mtld_strict_variant_differs_at_exact_threshold() -> None:
    tokens = [f"w{i}" for i in range(18)] + ["w0"] * 7 + ["x", "y", "z"]
    assert 18 / 25 == 0.72
    inclusive, strict = mtld(tokens), mtld(tokens, strict=True)
    assert inclusive == pytest.approx(lr(tokens).mtld(0.72), rel=1e-12)
    assert strict is not None and inclusive is not None and strict != inclusive
    forward_inclusive = len(tokens) / (1 + (1 - 1.0) / 0.28)
    assert forward_inclusive == 28
    text = [f"w{i}" for i in range(10)] + ["w0", "w1"] * 10
    assert mtld(text) == mtld(text, strict=True)


def test_self_bleu_equals_nltk_small_sets(rows: list[dict]) -> None:
    rng = random.Random(1)
    captions = [r["caption"] for r in rows]
    for size in (2, 3, 10, 57, 200):
        sample = rng.sample(captions, size)
        assert self_bleu(sample) == pytest.approx(nltk_self_bleu(sample), abs=1e-12)
    odd = ["", "a", "a a", "b", "a b a b", "b-lines b-lines", "the the the the the", "c d e f g h"]
    for max_n in (1, 2, 4):
        assert self_bleu(odd, max_n) == pytest.approx(nltk_self_bleu(odd, max_n), abs=1e-12)
    dupes = ["a b c d", "a b c d", "a b c", "x y"]
    assert self_bleu(dupes) == pytest.approx(nltk_self_bleu(dupes), abs=1e-12)


@pytest.mark.slow
def test_self_bleu_equals_nltk_on_1k_template_captions(rows: list[dict]) -> None:
    captions = [r["caption"] for r in rows]
    assert len(captions) == 1000
    ours = diversity(captions).values["self_bleu_4"]
    reference = nltk_self_bleu(captions, workers=min(8, os.cpu_count() or 1))
    assert ours == pytest.approx(reference, abs=1e-9)
    assert ours == self_bleu(captions)


def test_distinct_n_pooled_and_per_caption() -> None:
    captions = ["a b a b", "a b c", "d"]
    values = diversity(captions).values
    assert values["distinct_1_corpus"] == 4 / 8
    assert values["distinct_1_per_caption_mean"] == pytest.approx((2 / 4 + 1 + 1) / 3)
    assert values["distinct_2_corpus"] == 3 / 5
    assert values["distinct_2_per_caption_mean"] == pytest.approx((2 / 3 + 1) / 2)
    assert values["distinct_3_corpus"] == 3 / 3
    assert values["distinct_4_corpus"] == 1.0
    assert values["distinct_4_per_caption_mean"] == 1.0
    report = diversity(captions)
    assert "1 captions shorter than 2" in report.notes["distinct_2_per_caption_mean"]


def test_distinct_n_on_templates_matches_brute_force(rows: list[dict]) -> None:
    captions = [r["caption"] for r in rows[:400]]
    toks = [tokenize(c) for c in captions]
    values = diversity(captions).values
    for n in range(1, 5):
        grams = [tuple(t[i:i + n]) for t in toks for i in range(len(t) - n + 1)]
        assert values[f"distinct_{n}_corpus"] == pytest.approx(len(set(grams)) / len(grams))
        per = [len({tuple(t[i:i + n]) for i in range(len(t) - n + 1)}) / (len(t) - n + 1)
               for t in toks if len(t) >= n]
        assert values[f"distinct_{n}_per_caption_mean"] == pytest.approx(sum(per) / len(per))


def test_other_values(rows: list[dict]) -> None:
    captions = ["Lung ultrasound: multiple B-lines.", "Lung ultrasound: multiple B-lines.",
                "Breast ultrasound.", "No B-lines"]
    report = diversity(captions, ["lung", "lung", "breast", "lung"])
    v = report.values
    assert v["length_mean"] == 3.0
    assert v["length_median"] == 3.0
    assert v["unique_caption_share"] == 3 / 4
    assert v["medical_term_coverage"] == 2 / 4
    counts = [2, 3, 2, 3, 1, 1]
    assert v["unigram_entropy_bits"] == pytest.approx(-sum(c / 12 * math.log2(c / 12) for c in counts))
    custom = diversity(captions, term_matcher=lambda text, organ: "breast" in text.lower())
    assert custom.values["medical_term_coverage"] == 1 / 4
    templated = diversity([r["caption"] for r in rows[:200]], [r["organ"] for r in rows[:200]])
    assert 0.5 < templated.values["medical_term_coverage"] <= 1


@pytest.mark.parametrize("captions", [[], [""], ["one"], ["short caption", "another one"],
                                      ["", "", ""], ["x"] * 5])
def test_bad_input_gives_none_with_reason(captions: list[str]) -> None:
    report = diversity(captions, ["lung"] * len(captions))
    assert isinstance(report, DiversityReport)
    assert report.n_captions == len(captions)
    for name, value in report.values.items():
        if value is None:
            assert name in report.notes or "*" in report.notes
        else:
            assert not (isinstance(value, float) and math.isnan(value)), name
    assert report.values["mattr"] is None and report.notes["mattr"]
    assert report.values["hdd"] is None and report.notes["hdd"]
    if len(captions) < 2:
        assert report.values["self_bleu_4"] is None
    assert self_bleu(captions) == (None if len(captions) < 2 else report.values["self_bleu_4"])


def test_coverage_sampling() -> None:
    captions = ["multiple b-lines"] * 30 + ["nothing here"] * 10
    exact = diversity(captions, term_matcher=lambda t, o: "b-lines" in t, coverage_sample=None)
    assert exact.values["medical_term_coverage"] == 0.75
    assert "medical_term_coverage" not in exact.notes
    sampled = diversity(captions, term_matcher=lambda t, o: "b-lines" in t, coverage_sample=20)
    assert 0 <= sampled.values["medical_term_coverage"] <= 1
    assert "random 20 of 40" in sampled.notes["medical_term_coverage"]


def test_bad_parameters_and_mismatched_organs() -> None:
    report = diversity(["a b c"] * 30, ["liver"], mattr_window=0, hdd_sample=0)
    assert report.values["mattr"] is None and report.values["hdd"] is None
    assert "organs ignored" in report.notes["medical_term_coverage"]
    assert diversity(["a a a"] * 30, mattr_window=90).values["mattr"] == pytest.approx(1 / 90)


def test_findings_fidelity() -> None:
    out = findings_fidelity(
        ["Lung ultrasound: multiple B-lines, a pleural effusion; consistent with COVID-19.",
         "Lung ultrasound: a smooth pleural line; consistent with a normal lung.",
         "Breast ultrasound.", "anything"],
        ["lung", "lung", "breast", "kidney"],
        ["covid", "covid", None, "normal"],
        [{"lung_b_lines": "multiple", "lung_effusion": "absent"},
         {"lung_pleural_line": "smooth"}, None, {}],
    )
    assert out["n"] == 3
    assert out["precision"] == pytest.approx((2 / 3 + 1 / 2) / 2)
    assert out["recall"] == pytest.approx((1 + 1 / 2) / 2)
    assert out["contradiction_rate"] == pytest.approx(2 / 3)
    empty = findings_fidelity([], [], [], [])
    assert empty == {"precision": None, "recall": None, "contradiction_rate": None, "n": 0}


def test_template_captions_are_faithful(rows: list[dict]) -> None:
    sub = rows[:200]
    out = findings_fidelity([r["caption"] for r in sub], [r["organ"] for r in sub],
                            [r["label"] for r in sub], [r["findings"] for r in sub])
    assert out["n"] == 200
    assert out["precision"] is not None and out["precision"] > 0.8
    assert out["recall"] is not None and out["recall"] > 0.5


def test_grouped(rows: list[dict]) -> None:
    sub = rows[:60] + [{"caption": "lonely", "organ": None, "dataset": "solo"}]
    out = grouped(sub, ["caption_source", "dataset"])
    assert set(out) == {"template/d0", "template/d1", "none/solo"}
    assert out["template/d0"]["n_captions"] == 30
    assert set(out["template/d0"]["fidelity"]) == {"precision", "recall", "contradiction_rate", "n"}
    solo = out["none/solo"]
    assert solo["values"]["self_bleu_4"] is None and "self_bleu_4" in solo["notes"]
    assert solo["fidelity"]["n"] == 0 and solo["fidelity"]["precision"] is None
    assert grouped([], ["dataset"]) == {}
