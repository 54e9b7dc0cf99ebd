"""Token counting: the CLIP estimate never undercounts, and stays within a sensible factor."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from echocaptions.captions.reports.caption import ReportCaptioner
from echocaptions.captions.reports.tokens import _LEXICON, TokenCounter, _clip_estimate
from echocaptions.schema import LABELS
from echocaptions.synth.reports import make_report, sample_findings

# Clinical sentences outside the phantom's vocabulary, with their token counts
# (start/end included) from open_clip's SimpleTokenizer.
HELD_OUT: tuple[tuple[str, int], ...] = (
    ("The common bile duct measures 4 mm.", 10),
    ("Echogenic focus with twinkling artifact in the interpolar region.", 16),
    ("Heterogeneous myometrium with a subserosal leiomyoma.", 19),
    ("Hashimoto thyroiditis with pseudonodular pattern.", 15),
    ("Sludge and cholelithiasis without pericholecystic fluid.", 19),
    ("Sonographic Murphy sign negative.", 9),
    ("Conglomerate of necrotic level IIa lymphadenopathy, suspicious for metastatic papillary carcinoma.", 26),
    ("Spiculated hypoechoic mass at 10 o'clock, 4 cm from the nipple, measuring 1.8 x 1.2 x 1.5 cm (BI-RADS 5).", 43),
    ('Diffusely heterogeneous, hypervascular parenchyma ("thyroid inferno").', 18),
    ("Shear-wave elastography: median stiffness 12.4 kPa, IQR/median 18%.", 25),
    ("Subcentimeter hyperechoic focus in segment VII, likely a haemangioma.", 21),
    ("No pneumothorax; the pleural line is thickened and fragmented with sub-pleural consolidations.", 27),
    ("Parenchymal heterogeneity with pseudocysts and microcalcifications.", 19),
    ("Intraductal papilloma versus ductal carcinoma in situ; recommend stereotactic biopsy.", 23),
    ("Hepatofugal portal venous flow with recanalized paraumbilical vein.", 21),
    ("Café-au-lait macules noted on the overlying skin.", 17),
    ("Bilateral pleural effusions, larger on the right (approximately 450 mL).", 20),
    ("Anteroposterior diameter 2.3 cm; the gland is enlarged for age.", 20),
    ("A 7 mm echogenic nonshadowing polyp is seen.", 14),
    ("Follow-up in 6-12 months is suggested per ACR TI-RADS guidelines.", 21),
)


def phantom_sentences(n_reports: int = 400) -> list[str]:
    rng = np.random.default_rng(11)
    items = []
    for i in range(n_reports):
        organ = ("breast", "thyroid", "liver", "lung")[i % 4]
        label = LABELS[organ][int(rng.integers(len(LABELS[organ])))]
        items.append((make_report(organ, label, sample_findings(organ, label, rng), rng).text, organ))
    sentences: set[str] = set()
    for result in ReportCaptioner().caption_many(items):
        sentences.update(result.kept)
        sentences.update(d.split(": ", 1)[1] for d in result.dropped if d.startswith("over budget"))
    return sorted(sentences)


def test_budgets_and_kinds() -> None:
    assert TokenCounter().budget == 77
    assert TokenCounter("bert").budget == 512
    assert TokenCounter("clip", budget=40).budget == 40
    assert TokenCounter("bert").exact is False
    with pytest.raises(ValueError, match="not known"):
        TokenCounter("gpt")
    with pytest.raises(ValueError, match="too small"):
        TokenCounter("clip", budget=2)


def test_clip_estimate_rules() -> None:
    assert _clip_estimate("") == 0
    assert _clip_estimate("12345") == 5
    assert _clip_estimate("1.2 x 0.8 cm") == 8
    assert _clip_estimate("the liver") == 2
    assert _clip_estimate("hypoechoic") == 4
    assert _clip_estimate("zzqxv") == 4
    assert _clip_estimate("é") == 2
    assert TokenCounter("clip").count("") == 2 or TokenCounter("clip").exact


def test_estimate_never_undercounts_held_out_sentences() -> None:
    ratios = []
    for sentence, real in HELD_OUT:
        estimate = _clip_estimate(sentence) + 2
        assert estimate >= real, sentence
        ratios.append(estimate / real)
    assert np.mean(ratios) < 2.0


def test_bert_estimate_counts_every_mark_and_word() -> None:
    counter = TokenCounter("bert")
    assert counter.count("") == 2
    assert counter.count("the nodule, 12 mm.") >= 2 + 6


@pytest.mark.skipif(importlib.util.find_spec("open_clip") is None, reason="open_clip not installed")
def test_estimate_never_undercounts_open_clip_on_phantom_sentences() -> None:
    from open_clip.tokenizer import SimpleTokenizer

    real_tokenizer = SimpleTokenizer()
    sentences = phantom_sentences()
    assert len(sentences) >= 300
    ratios = []
    for sentence in [*sentences, *(s for s, _ in HELD_OUT)]:
        real = len(real_tokenizer.encode(sentence)) + 2
        estimate = _clip_estimate(sentence) + 2
        assert estimate >= real, sentence
        ratios.append(estimate / real)
    assert np.mean(ratios) < 1.5
    assert TokenCounter("clip").exact


@pytest.mark.skipif(importlib.util.find_spec("open_clip") is None, reason="open_clip not installed")
def test_lexicon_file_counts_are_open_clips() -> None:
    """Every word of ``assets/tokens/clip_lexicon.txt`` splits into exactly the pieces listed there."""
    from open_clip.tokenizer import SimpleTokenizer

    real_tokenizer = SimpleTokenizer()
    assert len(_LEXICON) > 2000 and _LEXICON["the"] == 1 and _LEXICON["choledocholithiasis"] == 7
    wrong = {w: (n, len(real_tokenizer.encode(w))) for w, n in _LEXICON.items() if len(real_tokenizer.encode(w)) != n}
    assert not wrong
