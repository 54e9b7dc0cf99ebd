"""Metric functions on fixed matrices against values worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from train_min.data import twins
from train_min.evaluate import (
    Group,
    alignment,
    auc,
    balanced_accuracy,
    chance_levels,
    class_prompts,
    classification,
    few_shot_indices,
    macro_auc,
    match_matrix,
    prototype_scores,
    recall_at_k,
    recall_chance,
)
from train_min.report import mean_std, spearman
from train_min.train import TextBank, batches

# Three images, three texts; image 0 has two captions (a, b), text b belongs to images 0 and 1.
ROW_TEXTS = [["a", "b"], ["b"], ["c"]]
SIM = np.array(
    [
        [0.9, 0.1, 0.5],
        [0.8, 0.3, 0.6],
        [0.2, 0.7, 0.1],
    ]
)


def test_match_matrix_merges_identical_texts() -> None:
    texts, match = match_matrix(ROW_TEXTS)
    assert texts == ["a", "b", "c"]
    assert match.tolist() == [[True, True, False], [False, True, False], [False, False, True]]


def test_recall_at_k_counts_a_hit_when_any_true_match_is_in_the_top_k() -> None:
    _, match = match_matrix(ROW_TEXTS)
    r = recall_at_k(SIM, match, ks=(1, 2, 3))
    # image 0: best true text a (0.9) ranks first; image 1: b (0.3) behind a and c;
    # image 2: c (0.1) behind both others.
    assert r["i2t_r1"] == pytest.approx(1 / 3)
    assert r["i2t_r2"] == pytest.approx(1 / 3)
    assert r["i2t_r3"] == pytest.approx(1.0)
    # text a: image 0 first; text b: image 1 (0.3) behind image 2 (0.7); text c: image 2 last.
    assert r["t2i_r1"] == pytest.approx(1 / 3)
    assert r["t2i_r2"] == pytest.approx(2 / 3)
    assert r["t2i_r3"] == pytest.approx(1.0)


def test_recall_ties_count_against_the_query() -> None:
    sim = np.full((2, 2), 0.5)
    match = np.eye(2, dtype=bool)
    r = recall_at_k(sim, match, ks=(1, 2))
    assert r == {"i2t_r1": 0.0, "t2i_r1": 0.0, "i2t_r2": 1.0, "t2i_r2": 1.0}


def test_recall_chance_is_the_random_ranking_expectation() -> None:
    _, match = match_matrix(ROW_TEXTS)
    chance = recall_chance(match, ks=(1, 3))
    # 1 - C(N-m, 1) / C(N, 1) with N = 3: m = 2 gives 2/3, m = 1 gives 1/3.
    assert chance["i2t_r1"] == pytest.approx((2 / 3 + 1 / 3 + 1 / 3) / 3)
    assert chance["t2i_r1"] == pytest.approx((1 / 3 + 2 / 3 + 1 / 3) / 3)
    assert chance["i2t_r3"] == 1.0


def test_alignment_means_and_gap() -> None:
    _, match = match_matrix(ROW_TEXTS)
    a = alignment(SIM, match)
    assert a["align_matched"] == pytest.approx((0.9 + 0.1 + 0.3 + 0.1) / 4)
    assert a["align_unmatched"] == pytest.approx((0.5 + 0.8 + 0.6 + 0.2 + 0.7) / 5)
    assert a["align_gap"] == pytest.approx(0.35 - 0.56)


def test_accuracy_and_balanced_accuracy_differ_on_imbalanced_classes() -> None:
    y = np.array([0, 0, 0, 1])
    scores = np.array([[0.9, 0.1], [0.8, 0.2], [0.4, 0.6], [0.3, 0.7]])
    r = classification(y, scores)
    assert r["acc"] == pytest.approx(3 / 4)
    assert r["bal_acc"] == pytest.approx((2 / 3 + 1) / 2)
    assert balanced_accuracy(np.array([2, 2, 1]), np.array([2, 1, 1])) == pytest.approx((1 / 2 + 1) / 2)


def test_auc_counts_ties_as_half() -> None:
    positive = np.array([True, True, False, False, False])
    scores = np.array([0.8, 0.4, 0.6, 0.4, 0.2])
    # pairs won by the positives: 0.8 beats 3; 0.4 beats 0.2, ties 0.4, loses to 0.6 -> 4.5 of 6
    assert auc(positive, scores) == pytest.approx(4.5 / 6)


def test_macro_auc_skips_classes_without_positives() -> None:
    y = np.array([0, 0, 1, 1])
    scores = np.array([[0.9, 0.1, 0.0], [0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.7, 0.2, 0.1]])
    # class 0: positives 0.9, 0.6 against 0.2, 0.7 -> 3 of 4; class 1: 0.7, 0.2 against 0.1, 0.3 -> 3 of 4
    assert macro_auc(y, scores) == pytest.approx(0.75)
    assert macro_auc(np.array([0, 0]), scores[:2]) is None


def test_chance_levels_of_classification() -> None:
    groups = [
        Group("breast", ["a", "b", "c"], np.arange(6), np.zeros(6, int), ["x"]),
        Group("lung", ["a", "b"], np.arange(2), np.zeros(2, int), ["y"]),
    ]
    chance = chance_levels(groups, "zs")
    assert chance["zs_bal_acc"] == pytest.approx((1 / 3 + 1 / 2) / 2)
    assert chance["zs_acc"] == pytest.approx((6 / 3 + 2 / 2) / 8)
    assert chance["zs_auc"] == 0.5


def test_few_shot_sampling_takes_k_per_class_or_all_of_a_smaller_class() -> None:
    labels = np.array([0, 1, 0, 2, 1, 0, 1, 0])
    picked = few_shot_indices(labels, 2, np.random.default_rng(7))
    assert sorted(np.bincount(labels[picked]).tolist()) == [1, 2, 2]
    assert len(set(picked.tolist())) == len(picked)
    again = few_shot_indices(labels, 2, np.random.default_rng(7))
    assert picked.tolist() == again.tolist()
    assert few_shot_indices(labels, 16, np.random.default_rng(0)).tolist() == list(range(8))
    draws = {tuple(few_shot_indices(labels, 1, np.random.default_rng(s))) for s in range(20)}
    assert len(draws) > 1  # different seeds draw different shots


def test_prototype_scores_are_cosines_to_class_means() -> None:
    train_x = np.array([[2.0, 0.0], [1.0, 0.0], [0.0, 3.0]])
    train_y = np.array([0, 0, 1])
    scores = prototype_scores(train_x, train_y, np.array([[0.6, 0.8]]), 2)
    assert scores[0].tolist() == pytest.approx([0.6, 0.8])


def test_prompts_fill_templates_with_every_class_name() -> None:
    prompts = {
        "organs": {"lung": {"templates": ["{} seen.", "lung: {}"], "classes": {"covid": ["COVID-19"]}}},
        "datasets": {"pocus": {"templates": ["pocus {}"]}},
        "default": {"templates": ["{organ} with {}"]},
    }
    assert class_prompts(prompts, "lung", "covid") == ["COVID-19 seen.", "lung: COVID-19"]
    assert class_prompts(prompts, "lung", "viral_pneumonia") == ["viral pneumonia seen.", "lung: viral pneumonia"]
    assert class_prompts(prompts, "lung", "covid", dataset="pocus") == ["pocus covid"]
    assert class_prompts(prompts, "liver", "steatosis") == ["liver with steatosis"]


def test_spearman_is_undefined_below_three_strategies_or_for_constant_values() -> None:
    assert spearman([1.0, 2.0, 3.0], [3.0, 2.0, 1.0])[0] == pytest.approx(-1.0)
    assert spearman([1.0, 2.0, 3.0], [1.0, 3.0, 2.0])[0] == pytest.approx(0.5)
    rho, why = spearman([1.0, 2.0], [1.0, 2.0])
    assert rho is None and "needs 3" in why
    rho, why = spearman([1.0, 1.0, 1.0], [1.0, 2.0, 3.0])
    assert rho is None and "constant" in why


def test_mean_std_over_seeds() -> None:
    assert mean_std([0.5, 0.7, None]) == {"mean": pytest.approx(0.6), "std": pytest.approx(0.1414, abs=1e-4), "n": 2}
    assert mean_std([0.4]) == {"mean": 0.4, "std": 0.0, "n": 1}
    assert mean_std([None])["mean"] is None


def test_text_bank_samples_every_caption_of_a_row_and_keeps_single_ones_fixed() -> None:
    vocab = {"a": 1, "b": 2, "c": 3, "d": 4}
    bank = TextBank([["a"], ["b", "c", "d"]], lambda texts: torch.tensor([[vocab[t]] for t in texts]))
    gen = torch.Generator().manual_seed(0)
    drawn = [bank.pick(torch.tensor([0, 1]), gen)[:, 0].tolist() for _ in range(60)]
    assert {d[0] for d in drawn} == {1}
    counts = np.bincount([d[1] for d in drawn], minlength=5)[2:]
    assert counts.min() >= 10  # each of the three captions, about 20 times each
    assert bank.pick(torch.tensor([1]), None)[:, 0].tolist() == [2]
    assert bank.mean_k == 2.0


def test_batches_cover_rows_in_a_seeded_order_and_split_evenly() -> None:
    one = batches(10, 4, 1, torch.Generator().manual_seed(3))
    assert [len(b) for b in one] == [4, 4, 2]
    assert sorted(torch.cat(one).tolist()) == list(range(10))
    again = batches(10, 4, 1, torch.Generator().manual_seed(3))
    assert [b.tolist() for b in one] == [b.tolist() for b in again]
    two = batches(11, 4, 2, torch.Generator().manual_seed(3))
    assert [len(b) for b in two] == [4, 4, 2]  # the 3-row tail loses one row to split evenly
    assert [len(b) for b in batches(9, 4, 1, torch.Generator().manual_seed(0))] == [4, 4]  # no 1-row batch


def test_strategies_with_the_same_captions_on_every_row_are_twins() -> None:
    texts = {"a": [["x"], ["y"]], "b": [["x"], ["y", "z"]], "c": [["x"], ["y"]], "d": [["x"], ["y", "z"]]}
    assert twins(texts) == {"a": None, "b": None, "c": "a", "d": "b"}


def test_random_resized_crop_zooms_into_part_of_each_image() -> None:
    from train_min.train import random_resized_crop

    ramp = torch.arange(64.0).view(1, 1, 8, 8).repeat(4, 3, 1, 1)
    out = random_resized_crop(ramp, torch.Generator().manual_seed(1), scale=(0.25, 0.25))
    again = random_resized_crop(ramp, torch.Generator().manual_seed(1), scale=(0.25, 0.25))
    assert out.shape == ramp.shape and torch.equal(out, again)
    assert out.min() >= 0 and out.max() <= 63
    spans = out.amax(dim=(1, 2, 3)) - out.amin(dim=(1, 2, 3))
    assert (spans < 0.7 * 63).all()  # a quarter of the area: about half the ramp in each direction
    assert len({tuple(o[0, 0].tolist()) for o in out}) > 1  # each image gets its own box
