"""Template caption tier: levels, deterministic phrasing, vocabulary, strict templates."""

from __future__ import annotations

import itertools
import json
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest

from echocaptions.captions.templates import (
    LEVELS,
    TemplateCaptioner,
    TemplateError,
    clean_caption,
    load_vocabulary,
)
from echocaptions.resources import bundled_dir
from echocaptions.schema import (
    FINDINGS_BY_ORGAN,
    FINDINGS_FIELDS,
    FINDINGS_VOCABULARY,
    LABELS,
    ORGANS,
    SchemaError,
)

REPO = Path(__file__).resolve().parents[2]

FULL_FINDINGS: dict[str, dict[str, str]] = {
    "thyroid": {
        "tirads_category": "5",
        "tirads_composition": "solid",
        "tirads_echogenicity": "very_hypoechoic",
        "tirads_shape": "taller_than_wide",
        "tirads_margin": "extrathyroidal_extension",
        "tirads_foci": "punctate",
    },
    "breast": {
        "birads_category": "4c",
        "birads_tissue": "homogeneous_fibroglandular",
        "birads_shape": "irregular",
        "birads_orientation": "not_parallel",
        "birads_margin": "microlobulated",
        "birads_echo_pattern": "complex_cystic_solid",
        "birads_posterior": "combined",
        "birads_calcifications": "outside_mass",
    },
    "liver": {"liver_steatosis": "S3", "liver_fibrosis": "F3", "liver_lesion": "fnh"},
    "lung": {
        "lung_a_lines": "present",
        "lung_b_lines": "confluent",
        "lung_consolidation": "subpleural",
        "lung_effusion": "present",
        "lung_pleural_line": "fragmented",
        "lung_sliding": "absent",
    },
}

# Words that only a given finding may bring into a caption (labels set to None).
FIELD_WORDS: dict[str, tuple[str, ...]] = {
    "tirads_category": ("ti-rads",),
    "tirads_composition": ("cystic", "spongiform", "solid"),
    "tirads_echogenicity": ("echoic",),
    "tirads_shape": ("taller", "wider"),
    "tirads_margin": ("margin", "extrathyroidal"),
    "tirads_foci": ("calcification", "foci", "comet"),
    "birads_category": ("bi-rads",),
    "birads_tissue": ("background", "fibroglandular", "fatty"),
    "birads_shape": ("oval", "round", "irregular"),
    "birads_orientation": ("parallel",),
    "birads_margin": ("margin",),
    "birads_echo_pattern": ("echoic", "complex"),
    "birads_posterior": ("posterior", "enhancement", "shadowing"),
    "birads_calcifications": ("calcification", "intraductal"),
    "liver_steatosis": ("steatosis", "echogenicity"),
    "liver_fibrosis": ("fibrosis", "metavir", "cirrhosis"),
    "liver_lesion": (
        "lesion",
        "cyst",
        "haemangioma",
        "hyperplasia",
        "carcinoma",
        "metastasis",
        "mass",
    ),
    "lung_a_lines": ("a-line",),
    "lung_b_lines": ("b-line",),
    "lung_consolidation": ("consolidation",),
    "lung_effusion": ("effusion",),
    "lung_pleural_line": ("pleural line",),
    "lung_sliding": ("sliding",),
}


@pytest.fixture(scope="module")
def captioner() -> TemplateCaptioner:
    return TemplateCaptioner(seed=0)


def variant_ids(captioner: TemplateCaptioner, organ: str, level: str, **record) -> dict[int, str]:
    """One record id per phrasing of ``level``, found by trying ids in order."""
    wanted = set(captioner.variants(organ, level))
    found: dict[int, str] = {}
    for i in range(10_000):
        record_id = f"{organ}-{i}"
        cap = captioner.caption(record_id=record_id, organ=organ, **record)
        assert cap.provenance.level == level
        found.setdefault(cap.provenance.variant, record_id)
        if set(found) == wanted:
            return found
    raise AssertionError(f"variants {wanted - set(found)} never chosen")


def all_variants(captioner: TemplateCaptioner, organ: str, level: str, **record) -> list[str]:
    ids = variant_ids(captioner, organ, level, **record)
    return [captioner.caption(record_id=i, organ=organ, **record).text for i in ids.values()]


def test_bundled_vocabularies_cover_schema() -> None:
    for organ in ORGANS:
        vocab = load_vocabulary(bundled_dir("templates") / "vocab" / f"{organ}.yaml")
        assert vocab.missing(organ) == [], f"{organ}: {vocab.missing(organ)}"
        for name in FINDINGS_BY_ORGAN[organ]:
            assert set(vocab.findings[name]) == set(FINDINGS_VOCABULARY[name]), name
            assert all(words.strip() for words in vocab.findings[name].values())
        assert set(vocab.labels) == set(LABELS[organ])
        assert set(vocab.impressions) == set(LABELS[organ])
    covered = set(itertools.chain.from_iterable(FINDINGS_BY_ORGAN[organ] for organ in ORGANS))
    assert covered == set(FINDINGS_FIELDS)


def test_vocabulary_words(captioner: TemplateCaptioner) -> None:
    thyroid = load_vocabulary(bundled_dir("templates") / "vocab" / "thyroid.yaml")
    assert thyroid.findings["tirads_echogenicity"]["very_hypoechoic"] == "very hypoechoic"
    breast = load_vocabulary(bundled_dir("templates") / "vocab" / "breast.yaml")
    assert "spiculated" in breast.findings["birads_margin"]["spiculated"]
    assert "angular" in breast.findings["birads_margin"]["angular"]
    lung = load_vocabulary(bundled_dir("templates") / "vocab" / "lung.yaml")
    assert lung.findings["lung_b_lines"]["confluent"] == "confluent B-lines"
    assert lung.labels["covid"] == "COVID-19 pneumonia"
    liver = load_vocabulary(bundled_dir("templates") / "vocab" / "liver.yaml")
    assert liver.labels["steatosis"] == "hepatic steatosis"


def test_enough_phrasings_per_level(captioner: TemplateCaptioner) -> None:
    assert set(captioner.organs) == set(ORGANS)
    for organ in ORGANS:
        assert len(captioner.variants(organ, "findings")) >= 4
        assert len(captioner.variants(organ, "diagnosis")) >= 4
        assert len(captioner.variants(organ, "organ")) >= 3


def test_level_selection(captioner: TemplateCaptioner) -> None:
    def level(**record) -> str:
        return captioner.caption(record_id="r1", **record).provenance.level

    assert (
        level(organ="thyroid", label="malignant", findings={"tirads_shape": "taller_than_wide"})
        == "findings"
    )
    assert level(organ="thyroid", label=None, findings={"tirads_category": "3"}) == "findings"
    assert level(organ="breast", label="benign", findings={}) == "diagnosis"
    assert level(organ="breast", label="benign", findings={"birads_shape": None}) == "diagnosis"
    assert level(organ="thyroid", label="benign", findings={"tirads_foci": "none"}) == "diagnosis"
    assert level(organ="liver", label=None, findings={}, view="subcostal") == "organ"
    assert level(organ="lung", label=None, findings={"lung_effusion": "absent"}) == "organ"


def test_deterministic_across_instances_and_seeds() -> None:
    records = [
        dict(
            record_id=f"id-{i}",
            organ=organ,
            label=LABELS[organ][i % len(LABELS[organ])],
            findings=FULL_FINDINGS[organ] if i % 2 else {},
        )
        for i, organ in zip(range(80), itertools.cycle(ORGANS))
    ]
    one, two, three = (
        TemplateCaptioner(seed=3),
        TemplateCaptioner(seed=3),
        TemplateCaptioner(seed=4),
    )
    first = [one.caption(**r) for r in records]
    second = [two.caption(**r) for r in records]
    assert first == second
    other = [three.caption(**r) for r in records]
    assert [c.text for c in other] != [c.text for c in first]
    assert {c.provenance.seed for c in other} == {4}


def test_deterministic_across_processes(captioner: TemplateCaptioner) -> None:
    script = (
        "import json\n"
        "from echocaptions.captions.templates import TemplateCaptioner\n"
        "c = TemplateCaptioner(seed=7)\n"
        "print(json.dumps([c.caption(record_id=f'p{i}', organ='lung', label='covid',"
        " findings={'lung_b_lines': 'multiple'}).text for i in range(40)]))\n"
    )
    outputs = []
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed, "PYTHONPATH": str(REPO)}
        done = subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
        )
        outputs.append(json.loads(done.stdout))
    assert outputs[0] == outputs[1]
    local = TemplateCaptioner(seed=7)
    assert outputs[0][:5] == [
        local.caption(
            record_id=f"p{i}", organ="lung", label="covid", findings={"lung_b_lines": "multiple"}
        ).text
        for i in range(5)
    ]


@pytest.mark.parametrize("level", LEVELS)
def test_ids_spread_over_phrasings(captioner: TemplateCaptioner, level: str) -> None:
    record = {
        "findings": dict(organ="breast", label="malignant", findings=FULL_FINDINGS["breast"]),
        "diagnosis": dict(organ="breast", label="malignant", findings={}),
        "organ": dict(organ="breast", label=None, findings={}),
    }[level]
    counts: dict[int, int] = {}
    n = 400
    for i in range(n):
        cap = captioner.caption(record_id=f"spread-{i}", **record)
        counts[cap.provenance.variant] = counts.get(cap.provenance.variant, 0) + 1
    variants = captioner.variants("breast", level)
    assert set(counts) == set(variants)
    assert min(counts.values()) > n / len(variants) / 2


def test_provenance(captioner: TemplateCaptioner) -> None:
    cap = captioner.caption(
        record_id="x",
        organ="lung",
        label="covid",
        findings={"lung_b_lines": "confluent"},
        dataset="pocus",
    )
    assert cap.source == "template"
    assert cap.provenance.template == "lung.j2"
    assert cap.provenance.level == "findings"
    assert cap.provenance.variant in captioner.variants("lung", "findings")
    assert cap.provenance.seed == 0


EXAMPLES = [
    ("thyroid", "malignant", FULL_FINDINGS["thyroid"], "transverse"),
    ("thyroid", "benign", {"tirads_composition": "spongiform"}, None),
    ("breast", "malignant", FULL_FINDINGS["breast"], "radial"),
    ("breast", "normal", {"birads_tissue": "heterogeneous", "birads_category": "1"}, None),
    ("breast", "benign", {"birads_shape": "oval", "birads_margin": "circumscribed"}, None),
    ("liver", "steatosis", {"liver_steatosis": "S2"}, "subcostal"),
    ("liver", "malignant", FULL_FINDINGS["liver"], None),
    ("lung", "covid", {"lung_b_lines": "confluent", "lung_pleural_line": "irregular"}, None),
    (
        "lung",
        "normal",
        {"lung_a_lines": "present", "lung_b_lines": "absent", "lung_sliding": "present"},
        None,
    ),
    ("lung", None, FULL_FINDINGS["lung"], "posterior"),
]


@pytest.mark.parametrize(("organ", "label", "findings", "view"), EXAMPLES)
def test_findings_captions_are_complete_and_clean(
    captioner: TemplateCaptioner, organ: str, label: str | None, findings: dict, view: str | None
) -> None:
    vocab = load_vocabulary(bundled_dir("templates") / "vocab" / f"{organ}.yaml")
    for text in all_variants(
        captioner, organ, "findings", label=label, findings=findings, view=view
    ):
        assert_clean(text)
        for name, code in findings.items():
            if code not in vocab.negatives.get(name, ()):
                assert vocab.findings[name][code].lower() in text.lower(), (name, text)
        if label is not None and label != "normal" or organ == "lung" and label:
            assert any(
                words.lower() in text.lower()
                for words in (vocab.labels[label], vocab.impressions[label])
            ), text


@pytest.mark.parametrize("organ", ORGANS)
def test_diagnosis_and_organ_captions(captioner: TemplateCaptioner, organ: str) -> None:
    vocab = load_vocabulary(bundled_dir("templates") / "vocab" / f"{organ}.yaml")
    view = next(iter(vocab.views))
    for label in LABELS[organ]:
        for text in all_variants(
            captioner, organ, "diagnosis", label=label, findings={}, view=view
        ):
            assert_clean(text)
            assert organ in text.lower() or vocab.labels[label].lower() in text.lower()
            said = (vocab.labels[label].lower(), vocab.impressions[label].lower())
            assert label == "normal" or any(words in text.lower() for words in said), text
    for text in all_variants(captioner, organ, "organ", label=None, findings={}, view=view):
        assert_clean(text)
        assert organ in text.lower() and view in text.lower()
    for text in all_variants(captioner, organ, "organ", label=None, findings={}):
        assert_clean(text)


@pytest.mark.parametrize("organ", ORGANS)
def test_never_mentions_absent_findings(captioner: TemplateCaptioner, organ: str) -> None:
    vocab = load_vocabulary(bundled_dir("templates") / "vocab" / f"{organ}.yaml")
    fields = FINDINGS_BY_ORGAN[organ]
    rng = random.Random(organ)
    for trial in range(300):
        findings: dict[str, str | None] = {}
        for name in fields:
            roll = rng.random()
            if roll < 0.4:
                findings[name] = None
            elif roll < 0.5 and vocab.negatives.get(name):
                findings[name] = sorted(vocab.negatives[name])[0]
            else:
                findings[name] = rng.choice(FINDINGS_VOCABULARY[name])
        text = captioner.caption(
            record_id=f"absent-{trial}",
            organ=organ,
            label=None,
            findings=findings,
            view=rng.choice([None, *vocab.views]),
        ).text
        assert_clean(text)
        for name in fields:
            code = findings[name]
            if code is None or code in vocab.negatives.get(name, ()):
                for word in FIELD_WORDS[name]:
                    other_codes = [
                        vocab.findings[other][findings[other]]
                        for other in fields
                        if other != name
                        and findings[other] is not None
                        and findings[other] not in vocab.negatives.get(other, ())
                    ]
                    if any(word in words.lower() for words in other_codes):
                        continue
                    assert word not in text.lower(), (name, code, word, text)


def test_no_calcification_words_without_foci(captioner: TemplateCaptioner) -> None:
    base = {
        "tirads_composition": "solid",
        "tirads_echogenicity": "hypoechoic",
        "tirads_margin": "smooth",
    }
    for foci in (None, "none"):
        for label in (None, "benign", "malignant"):
            for text in all_variants(
                captioner,
                "thyroid",
                "findings",
                label=label,
                findings={**base, "tirads_foci": foci},
            ):
                assert "calcification" not in text.lower()
                assert "foci" not in text.lower()


def test_captions_fit_clip_budget(captioner: TemplateCaptioner) -> None:
    for organ in ORGANS:
        vocab = load_vocabulary(bundled_dir("templates") / "vocab" / f"{organ}.yaml")
        longest_view = max(vocab.views.values(), key=len)
        for label in (None, *LABELS[organ]):
            for text in all_variants(
                captioner,
                organ,
                "findings",
                label=label,
                findings=FULL_FINDINGS[organ],
                view=longest_view,
            ):
                assert len(text.split()) <= 40, text
        for cap in captioner.preview(organ, 30):
            assert_clean(cap.text)
            assert len(cap.text.split()) <= 40


def test_views_outside_vocabulary_never_reach_captions(captioner: TemplateCaptioner) -> None:
    for i in range(30):
        text = captioner.caption(
            record_id=f"v{i}",
            organ="breast",
            label="benign",
            findings={},
            view="Jane Doe 1970-01-01",
        ).text
        assert "jane" not in text.lower() and "1970" not in text
    text = captioner.caption(
        record_id="v", organ="thyroid", label=None, findings={}, view="Transverse"
    ).text
    assert "transverse" in text.lower()


def test_invalid_input_is_rejected(captioner: TemplateCaptioner) -> None:
    with pytest.raises(SchemaError, match="tirads_shape"):
        captioner.caption(
            record_id="x", organ="thyroid", label=None, findings={"tirads_shape": "oval"}
        )
    with pytest.raises(SchemaError, match="does not apply"):
        captioner.caption(
            record_id="x", organ="thyroid", label=None, findings={"birads_shape": "oval"}
        )
    with pytest.raises(SchemaError, match="label"):
        captioner.caption(record_id="x", organ="thyroid", label="covid", findings={})
    with pytest.raises(SchemaError, match="organ"):
        captioner.caption(record_id="x", organ="heart", label=None, findings={})
    flat = dict.fromkeys(FINDINGS_FIELDS)
    flat["tirads_category"] = "4"
    cap = captioner.caption(record_id="x", organ="thyroid", label=None, findings=flat)
    assert cap.provenance.level == "findings" and "TI-RADS 4" in cap.text


def test_strict_undefined_names_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "thyroid.j2").write_text(
        "{% macro organ_0() %}\n"
        "Thyroid ultrasound\n"
        "of {{ present.tirads_size }} nodule.\n"
        "{% endmacro %}\n"
    )
    (tmp_path / "lung.j2").write_text(
        "{% set where = probe_depth ~ ' ' %}\n{% macro organ_0() %}Lung.{% endmacro %}\n"
    )
    captioner = TemplateCaptioner(tmp_path)
    with pytest.raises(TemplateError, match=r"thyroid\.j2:3:.*tirads_size"):
        captioner.caption(record_id="x", organ="thyroid", label=None, findings={})
    with pytest.raises(TemplateError, match=r"lung\.j2:1:.*probe_depth"):
        captioner.caption(record_id="x", organ="lung", label=None, findings={})


def test_syntax_error_and_missing_parts_name_the_file(tmp_path: Path) -> None:
    (tmp_path / "liver.j2").write_text(
        "{% macro organ_0() %}\n{{ organ_text ( }}\n{% endmacro %}\n"
    )
    with pytest.raises(TemplateError, match=r"liver\.j2:2"):
        TemplateCaptioner(tmp_path)
    (tmp_path / "liver.j2").write_text("{% macro findings_0() %}Liver.{% endmacro %}\n")
    with pytest.raises(TemplateError, match=r"liver\.j2.*organ_0"):
        TemplateCaptioner(tmp_path)
    (tmp_path / "liver.j2").write_text("{% macro organ_0() %}Liver.{% endmacro %}\n")
    captioner = TemplateCaptioner(tmp_path)
    with pytest.raises(TemplateError, match=r"breast\.j2"):
        captioner.caption(record_id="x", organ="breast", label=None, findings={})
    with pytest.raises(FileNotFoundError):
        TemplateCaptioner(tmp_path / "nowhere")


def test_user_template_dir_overrides_bundled(tmp_path: Path) -> None:
    (tmp_path / "thyroid.j2").write_text(
        "{% set what = [present.tirads_echogenicity, 'nodule'] | select | join(' ') %}\n"
        "{% macro findings_0() %}custom A: {{ what }}, {{ label_text }}{% endmacro %}\n"
        "{% macro findings_1() %}custom B: {{ what }}, {{ label_text }}{% endmacro %}\n"
        "{% macro diagnosis_0() %}custom {{ label_text }} thyroid{% endmacro %}\n"
        "{% macro organ_0() %}custom thyroid {{ view or '' }}{% endmacro %}\n"
    )
    captioner = TemplateCaptioner(tmp_path, seed=1)
    assert captioner.organs == ("thyroid",)
    texts = {
        captioner.caption(
            record_id=f"u{i}",
            organ="thyroid",
            label="malignant",
            findings={"tirads_echogenicity": "very_hypoechoic"},
        ).text
        for i in range(20)
    }
    assert texts == {
        "Custom A: very hypoechoic nodule, malignant.",
        "Custom B: very hypoechoic nodule, malignant.",
    }
    cap = captioner.caption(record_id="u", organ="thyroid", label="benign", findings={})
    assert (cap.text, cap.provenance.template, cap.provenance.level) == (
        "Custom benign thyroid.",
        "thyroid.j2",
        "diagnosis",
    )
    vocab_dir = tmp_path / "vocab"
    vocab_dir.mkdir()
    words = (bundled_dir("templates") / "vocab" / "thyroid.yaml").read_text()
    (vocab_dir / "thyroid.yaml").write_text(
        words.replace("very_hypoechoic: very hypoechoic", "very_hypoechoic: markedly hypoechoic")
    )
    text = (
        TemplateCaptioner(tmp_path)
        .caption(
            record_id="u",
            organ="thyroid",
            label="malignant",
            findings={"tirads_echogenicity": "very_hypoechoic"},
        )
        .text
    )
    assert "markedly hypoechoic" in text


def test_user_vocabulary_gap_names_file_and_code(tmp_path: Path) -> None:
    (tmp_path / "lung.j2").write_text((bundled_dir("templates") / "lung.j2").read_text())
    (tmp_path / "vocab").mkdir()
    words = (bundled_dir("templates") / "vocab" / "lung.yaml").read_text()
    (tmp_path / "vocab" / "lung.yaml").write_text(
        words.replace("    confluent: confluent B-lines\n", "")
    )
    captioner = TemplateCaptioner(tmp_path)
    with pytest.raises(TemplateError, match=r"lung\.yaml.*lung_b_lines='confluent'"):
        captioner.caption(
            record_id="x", organ="lung", label=None, findings={"lung_b_lines": "confluent"}
        )


def test_clean_caption() -> None:
    assert clean_caption("  breast ultrasound showing  a mass with , , BI-RADS 5 , .") == (
        "Breast ultrasound showing a mass, BI-RADS 5."
    )
    assert clean_caption("Thyroid nodule: ; ; TI-RADS 5, ") == "Thyroid nodule: TI-RADS 5."
    assert clean_caption("lung ultrasound with ()  and.") == "Lung ultrasound."
    assert clean_caption(" , . ") == ""


def assert_clean(text: str) -> None:
    assert text == text.strip() and "  " not in text
    assert text[0].isupper() and text.endswith(".") and not text.endswith("..")
    assert not re.search(r"[,;:]\s*[,;:.]|\s[,;:.]|\(\s*\)", text), text
    assert not re.search(r"\b(and|with|or|of|showing)[,;:.]", text), text
    assert "None" not in text and "{" not in text


def test_several_variants_are_distinct_and_start_with_the_single_caption() -> None:
    captioner = TemplateCaptioner(seed=3)
    findings = {"tirads_composition": "solid", "tirads_echogenicity": "hypoechoic", "tirads_margin": "smooth"}
    kwargs = dict(record_id="ddti-1", organ="thyroid", label="benign", findings=findings)
    single = captioner.caption(**kwargs)
    several = captioner.captions(**kwargs, count=16)
    assert several[0] == single
    assert len({c.text for c in several}) == len(several) > 1
    assert {c.provenance.variant for c in several} <= set(captioner.variants("thyroid", several[0].provenance.level))
    assert captioner.captions(**kwargs, count=2) == several[:2]
