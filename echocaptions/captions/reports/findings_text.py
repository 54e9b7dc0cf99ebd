"""Negation-aware findings matcher: report or caption text to schema findings.

A lexicon of clinical phrases (BI-RADS, TI-RADS, liver, lung point-of-care
and diagnosis words) is compiled once per organ; a phrase is tried only where
a text word is one of its possible first words, which keeps matching fast. Each
mention is checked NegEx-style against trigger phrases in its sentence:
pre-negations ("no", "without", "no evidence of", "negative for"), post-negations
("is absent", "are not seen", "was excluded"), pseudo-negations that negate
nothing ("no change", "not only"), uncertainty ("possible", "cannot exclude"),
another person's history ("family history of") and scope terminators ("but",
"however", "which", ";"). Sentences are split with a plain rule, no model.

Besides the schema findings fields, statements use two more fields: ``label``
(diagnosis words, value a label name) and ``lesion`` (a mass, nodule, lesion or
cyst, value ``present``). An unqualified mention ("calcifications", "B-lines",
"coarse echotexture") has the value ``present``, or the field's generic code
where it has one (``liver_lesion`` ``mass``); negated, it maps to the field's
absence code in :meth:`FindingsMatcher.findings`.

Sentences under CLINICAL HISTORY, INDICATION, TECHNIQUE or COMPARISON headings,
uncertain mentions and mentions about another person are returned by
:meth:`FindingsMatcher.statements` but ignored by ``findings`` and
``contradictions``.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Iterator
from dataclasses import dataclass

try:
    from re import _parser as _sre_parse  # type: ignore[attr-defined]
except ImportError:  # Python 3.10
    import sre_parse as _sre_parse  # type: ignore[no-redef]

from echocaptions.schema import FINDINGS_VOCABULARY, LABELS, ORGANS

PRESENT = "present"
LABEL = "label"
LESION = "lesion"


@dataclass(frozen=True)
class Statement:
    """One mention of a finding or diagnosis in a text."""

    field: str
    value: str
    negated: bool
    start: int
    end: int
    sentence: int


@dataclass(frozen=True)
class _Emit:
    field: str
    value: str
    generic: bool = False
    absence_ok: bool = True


@dataclass(frozen=True)
class _Mention:
    emit: _Emit
    start: int
    end: int
    sentence: int
    negated: bool
    uncertain: bool
    other: bool
    context: bool

    @property
    def asserted(self) -> bool:
        """About the patient, stated with certainty, outside history sections."""
        return not (self.uncertain or self.other or self.context)


def _emit(spec: str) -> _Emit:
    if spec == LESION:
        return _Emit(LESION, PRESENT, generic=True)
    field, value = spec.split("=")
    if value in ("*", "*!"):
        return _Emit(field, PRESENT, generic=True, absence_ok=value == "*")
    if value.endswith("~"):
        return _Emit(field, value[:-1], generic=True)
    return _Emit(field, value)


ECHO = r"-?echo(?:ic|genic(?:ity)?)"
ECHO_WORD = r"(?:(?:hypo|hyper|iso)-?)?echo(?:ic|genic(?:ity)?)"
CALC = r"(?:calcifications?|calcific(?:ations)? foci|calcified foci|calcs)"
ANY_CALC = r"(?:micro-?|macro-?)?" + CALC
BL = r"b[- ]?lines?"
MARG = r"(?: margins?| borders?| contours?| outlines?)?"

# (pattern, emits). At one position the first matching entry wins, so blockers
# and longer phrases come before the words they contain.
_LEXICON: tuple[tuple[str, tuple[str, ...]], ...] = (
    # Blockers: phrases that contain lexicon words but state no finding.
    (ECHO_WORD + r" (?:halo|rim|hilum|capsule)", ()),
    (r"(?:other|additional|further|new|second|separate)"
     r" (?:focal )?(?:hepatic |liver |breast |thyroid )?(?:lesions?|masse?s?|nodules?|cysts?)", ()),
    (r"(?:lymph )?nodes?|(?:hyper|iso|hypo)plastic nodules?", ()),
    (r"eu-?tirads|k-?tirads|c-?tirads", ()),
    (r"normal (?:thyroid |liver |hepatic |breast |lung )?(?:parenchyma|echotexture|background|size)", ()),
    (r"peripheral (?:vascularity|flow|vascular)", ()),
    # Categories.
    (r"bi-?rads(?: us)?(?: category| assessment| score)?\s*:?\s*(?:[0-6][abc]?|category [0-6][abc]?)\b",
     ("birads_category=?",)),
    (r"(?:acr[- ])?ti-?rads(?: category| level)?\s*:?\s*(?:tr\s?)?[1-5][abc]?\b"
     r"|kwak(?: ti-?rads)?(?: category)?\s*:?\s*[1-5][abc]?\b|\btr[1-5]\b",
     ("tirads_category=?",)),
    (r"(?:ti-?rads )?(?:total )?(?:points?|score)\s*:?\s*\d{1,2}\b|\d{1,2} (?:ti-?rads )?points?\b",
     ("tirads_category=#",)),
    # Diagnosis words.
    (r"(?:highly |very )?suspicious (?:for|of) (?:malignancy|carcinoma|cancer|neoplasm)"
     r"|highly suspicious|(?:highly )?suggestive of (?:malignancy|carcinoma|cancer)",
     ("label=malignant",)),
    (r"hepatocellular carcinoma|hcc|hepatoma", ("liver_lesion=hcc", LESION, "label=malignant")),
    (r"metastas[ie]s|metastatic (?:disease|lesions?|deposits?|foci)|target(?:-like)? lesions?"
     r"|bull'?s[- ]eye(?: lesions?| appearance| pattern)?",
     ("liver_lesion=metastasis", LESION, "label=malignant")),
    (r"malignan(?:t|cy|cies)(?:-appearing| appearing)?|carcinomas?|cancers?|neoplasms?|sarcomas?"
     r"|lymphomas?|metastatic",
     ("label=malignant",)),
    (r"probably benign|benign(?:-appearing| appearing| looking)?|fibroadenomas?|colloid (?:nodules?|cysts?)",
     ("label=benign",)),
    (r"covid(?:-?19)?(?: pneumonia| pneumonitis| infection)?|sars-?cov-?2 (?:pneumonia|infection)"
     r"|coronavirus (?:disease|pneumonia|infection)",
     ("label=covid",)),
    (r"viral (?:pneumonia|pneumonitis)", ("label=viral_pneumonia",)),
    (r"bacterial pneumonia|lobar pneumonia|community[- ]acquired pneumonia|aspiration pneumonia",
     ("label=pneumonia",)),
    (r"pneumonias?|pneumonic", ("label=pneumonia~",)),
    (r"normal (?:(?:bilateral |sonographic |ultrasound |us )?appearance of the (?:breast|thyroid|liver|lungs?)"
     r"|(?:sonographic |ultrasound |us )appearance(?: of the (?:breast|thyroid|liver|lungs?))?"
     r"|(?:breast|thyroid|liver|lung|chest)s?(?: gland| tissue| parenchyma)?"
     r"(?: ultrasound| sonogram| study| examination| exam| scan)?"
     r"|(?:ultrasound|sonographic|sonogram|study|examination|exam|scan)(?: findings)?"
     r"|(?:lung )?aeration|a-line pattern)"
     r"|(?:unremarkable|negative) (?:ultrasound|sonogram|study|examination|exam|scan)"
     r"|normally aerated lungs?",
     ("label=normal",)),
    # Breast tissue composition.
    (r"(?:background echotexture|background|tissue composition|breast tissue)(?: is|:)?"
     r"\s*homogeneous[- ]+(?:fat(?:ty)?|adipose)",
     ("birads_tissue=homogeneous_fat",)),
    (r"(?:background echotexture|background|tissue composition|breast tissue)(?: is|:)?"
     r"\s*homogeneous[- ]+fibroglandular",
     ("birads_tissue=homogeneous_fibroglandular",)),
    (r"(?:background echotexture|background|tissue composition|breast tissue)(?: is|:)?\s*heterogeneous"
     r"|heterogeneous (?:background|breast tissue|fibroglandular)(?: echotexture| tissue)?",
     ("birads_tissue=heterogeneous",)),
    (r"homogeneous[- ]+(?:fat(?:ty)?|adipose)(?: background| tissue| echotexture)?",
     ("birads_tissue=homogeneous_fat",)),
    (r"homogeneous[- ]+fibroglandular(?: background| tissue| echotexture)?",
     ("birads_tissue=homogeneous_fibroglandular",)),
    # Shape and orientation.
    (r"not[- ]parallel|non-?parallel|antiparallel", ("birads_orientation=not_parallel",)),
    (r"taller[- ]than[- ]wide(?: shape| orientation)?|anteroposterior (?:diameter )?greater than transverse",
     ("tirads_shape=taller_than_wide", "birads_orientation=not_parallel")),
    (r"wider[- ]than[- ]tall(?: shape| orientation)?",
     ("tirads_shape=wider_than_tall", "birads_orientation=parallel")),
    (r"parallel(?: orientation| to the skin)?|oriented parallel(?: to the skin)?", ("birads_orientation=parallel",)),
    (r"irregular(?:ly)?(?: margins?| borders?| contours?| outlines?)", ("tirads_margin=irregular",)),
    (r"(?:the )?pleural line (?:is |appears |was )?irregular and thick(?:ened)?"
     r"|irregular and thick(?:ened)? pleural line",
     ("lung_pleural_line=irregular", "lung_pleural_line=thickened")),
    (r"(?:the )?pleural line (?:is |appears |was )?(?:(?:diffusely|markedly|mildly|slightly) )?(?:smooth|regular)"
     r"|(?:smooth|regular|normal) pleural line",
     ("lung_pleural_line=smooth",)),
    (r"(?:the )?pleural line (?:is |appears |was )?(?:(?:diffusely|markedly|mildly|slightly) )?irregular"
     r"|irregular(?:ities of the)? pleural(?: line)?|pleural (?:line )?irregularit(?:y|ies)",
     ("lung_pleural_line=irregular",)),
    (r"(?:the )?pleural line (?:is |appears |was )?(?:(?:diffusely|markedly|mildly|slightly) )?thick(?:ened)?"
     r"|thick(?:ened)? pleural line|pleural (?:line )?thickening",
     ("lung_pleural_line=thickened",)),
    (r"(?:the )?pleural line (?:is |appears |was )?(?:(?:diffusely|markedly|mildly|slightly) )?"
     r"(?:fragmented|interrupted|broken)"
     r"|(?:fragmented|interrupted|broken) pleural line|pleural (?:line )?fragmentation",
     ("lung_pleural_line=fragmented",)),
    (r"irregular(?:ly)?(?: in)?(?: shape|-shaped| shaped)?", ("birads_shape=irregular",)),
    (r"oval(?:-shaped| shaped| in shape)?|ovoid|elliptical|ellipsoid", ("birads_shape=oval",)),
    (r"round(?:ed)?(?:-shaped| shaped| in shape)?", ("birads_shape=round",)),
    # Margins.
    (r"(?:well[- ])?circumscribed" + MARG, ("birads_margin=circumscribed", "tirads_margin=smooth")),
    (r"well[- ]?defined(?: smooth)?" + MARG, ("birads_margin=circumscribed~", "tirads_margin=smooth")),
    (r"smooth" + MARG, ("tirads_margin=smooth",)),
    (r"(?:ill|poorly)[- ]?defined" + MARG, ("birads_margin=indistinct", "tirads_margin=ill_defined")),
    (r"indistinct" + MARG, ("birads_margin=indistinct", "tirads_margin=ill_defined")),
    (r"angular" + MARG, ("birads_margin=angular",)),
    (r"micro-?lobulated" + MARG, ("birads_margin=microlobulated", "tirads_margin=lobulated")),
    (r"(?:macro-?)?lobulated" + MARG, ("tirads_margin=lobulated",)),
    (r"spiculated" + MARG, ("birads_margin=spiculated", "tirads_margin=irregular")),
    (r"infiltrative" + MARG, ("tirads_margin=irregular",)),
    (r"extra-?thyroidal (?:extension|invasion|spread)|\bete\b|invasion of the strap muscles",
     ("tirads_margin=extrathyroidal_extension",)),
    # Composition (thyroid) and echo pattern.
    (r"complex cystic(?: and |-| or )solid|complex solid(?: and |-| or )cystic",
     ("birads_echo_pattern=complex_cystic_solid", "tirads_composition=mixed")),
    (r"mixed (?:cystic(?: and |-| or )solid|solid(?: and |-| or )cystic)|partially cystic"
     r"|predominantly (?:solid|cystic)"
     r"|mixed composition",
     ("tirads_composition=mixed",)),
    (r"(?:almost completely |entirely |purely |completely )?cystic", ("tirads_composition=cystic",)),
    (r"spongiform", ("tirads_composition=spongiform",)),
    (r"(?:almost completely |entirely |purely |completely )?solid", ("tirads_composition=solid",)),
    (r"(?:very|markedly|marked) hypo" + ECHO,
     ("tirads_echogenicity=very_hypoechoic", "birads_echo_pattern=hypoechoic")),
    (r"an" + ECHO, ("tirads_echogenicity=anechoic", "birads_echo_pattern=anechoic")),
    (r"hyper" + ECHO, ("tirads_echogenicity=hyperechoic", "birads_echo_pattern=hyperechoic")),
    (r"iso" + ECHO, ("tirads_echogenicity=isoechoic", "birads_echo_pattern=isoechoic")),
    (r"hypo" + ECHO, ("tirads_echogenicity=hypoechoic", "birads_echo_pattern=hypoechoic")),
    (r"heterogeneous(?: echo pattern| echogenicity| internal echoes)?|mixed echogenicity",
     ("birads_echo_pattern=heterogeneous",)),
    # Posterior features.
    (r"(?:posterior )?(?:acoustic )?enhancement|(?:increased )?through[- ]transmission",
     ("birads_posterior=enhancement",)),
    (r"(?:posterior )?(?:acoustic )?shadow(?:ing|s)?", ("birads_posterior=shadowing",)),
    (r"combined (?:posterior )?(?:pattern|features)|(?:a )?combined posterior pattern", ("birads_posterior=combined",)),
    (r"posterior (?:acoustic )?(?:features|phenomena|findings)", ("birads_posterior=*",)),
    # Calcifications and echogenic foci.
    (r"suspicious " + CALC + r"|suspicious (?:micro-?)?calcifications?|suspicious echogenic foci",
     ("birads_calcifications=*!", "tirads_foci=*!")),
    (r"(?:internal (?:echogenic foci|" + ANY_CALC + r")"
     r"(?: (?:compatible with|consistent with|representing|suggestive of) "
     + ANY_CALC + r")?|" + ANY_CALC + r" (?:with)?in (?:the|a) mass|intra-?mass " + ANY_CALC + ")",
     ("birads_calcifications=in_mass", "tirads_foci=*")),
    (ANY_CALC + r" outside (?:of )?(?:the|a) mass", ("birads_calcifications=outside_mass", "tirads_foci=*")),
    (r"intraductal " + ANY_CALC + r"|" + ANY_CALC + r" (?:with)?in (?:a |the )?ducts?",
     ("birads_calcifications=intraductal", "tirads_foci=*")),
    (r"(?:large )?comet[- ]tail(?: artefacts?| artifacts?| signs?| reverberations?)?",
     ("tirads_foci=comet_tail",)),
    (r"(?:coarse )?macro-?" + CALC + r"|coarse " + CALC,
     ("tirads_foci=macrocalcifications", "birads_calcifications=*")),
    (r"peripheral (?:rim |curvilinear )?" + CALC + r"|(?:rim|eggshell|egg-shell) " + CALC,
     ("tirads_foci=peripheral", "birads_calcifications=*")),
    (r"punctate echogenic foci|micro-?" + CALC + r"|punctate " + CALC,
     ("tirads_foci=punctate", "birads_calcifications=*")),
    (r"echogenic foci|" + CALC, ("tirads_foci=*", "birads_calcifications=*")),
    # Liver steatosis.
    (r"(?:mild(?:ly)?|grade (?:1|i)|slight(?:ly)?) (?:increased )?(?:hepatic |liver |parenchymal )?echogenicity"
     r"|(?:mild|grade (?:1|i)) (?:hepatic |diffuse )?(?:steatosis|fatty (?:liver|infiltration|change))"
     r"|(?:hepatic )?steatosis,? (?:grade )?(?:s?1|i)\b",
     ("liver_steatosis=S1", "label=steatosis")),
    (r"moderate(?:ly)? (?:increased )?(?:hepatic |liver |parenchymal )?echogenicity"
     r"|(?:moderate|grade (?:2|ii)) (?:hepatic |diffuse )?(?:steatosis|fatty (?:liver|infiltration|change))"
     r"|(?:hepatic )?steatosis,? (?:grade )?(?:s?2|ii)\b",
     ("liver_steatosis=S2", "label=steatosis")),
    (r"(?:severe(?:ly)?|marked(?:ly)?|grade (?:3|iii)) (?:increased )?(?:hepatic |liver |parenchymal )?echogenicity"
     r"|(?:severe|marked|grade (?:3|iii)) (?:hepatic |diffuse )?(?:steatosis|fatty (?:liver|infiltration|change))"
     r"|(?:hepatic )?steatosis,? (?:grade )?(?:s?3|iii)\b",
     ("liver_steatosis=S3", "label=steatosis")),
    (r"\bs0\b|normal (?:hepatic |liver |parenchymal )?echogenicity", ("liver_steatosis=S0",)),
    (r"(?:diffuse(?:ly)? )?(?:increased (?:hepatic |liver |parenchymal )?echogenicity|echogenic liver|bright liver)",
     ("liver_steatosis=*",)),
    (r"(?:hepatic |diffuse )?steatosis|fatty (?:liver|infiltration|change)|(?:steatotic|fatty) liver(?: disease)?"
     r"|nafld|masld|steatotic",
     ("liver_steatosis=*", "label=steatosis")),
    # Liver fibrosis.
    (r"cirrho(?:sis|tic)(?: liver| morphology)?|features of cirrhosis|(?:metavir )?f4\b",
     ("liver_fibrosis=F4", "label=cirrhosis")),
    (r"(?:metavir )?(?:fibrosis )?(?:stage )?f0\b|(?:metavir|fibrosis) (?:stage )?0\b", ("liver_fibrosis=F0",)),
    (r"(?:mild|portal|minimal) fibrosis|(?:metavir )?(?:fibrosis )?(?:stage )?f1\b|(?:metavir|fibrosis) (?:stage )?1\b",
     ("liver_fibrosis=F1", "label=fibrosis")),
    (r"(?:significant|moderate) fibrosis|(?:metavir )?(?:fibrosis )?(?:stage )?f2\b"
     r"|(?:metavir|fibrosis) (?:stage )?2\b",
     ("liver_fibrosis=F2", "label=fibrosis")),
    (r"(?:advanced|bridging|severe) fibrosis|(?:metavir )?(?:fibrosis )?(?:stage )?f3\b"
     r"|(?:metavir|fibrosis) (?:stage )?3\b",
     ("liver_fibrosis=F3", "label=fibrosis")),
    (r"(?:hepatic |liver )?fibrosis|fibrotic", ("liver_fibrosis=*", "label=fibrosis")),
    (r"coarse(?:ned)?,? (?:heterogeneous )?(?:hepatic |liver |parenchymal )?echo-?texture"
     r"|nodular (?:liver )?(?:surface|contour|outline|margin)|surface nodularity|chronic liver disease"
     r"|caudate (?:lobe )?hypertrophy",
     ("liver_fibrosis=*",)),
    # Focal lesions.
    (r"focal nodular hyperplasia|fnh|spoke[- ]?wheel(?: vascular)?(?: pattern| sign)?",
     ("liver_lesion=fnh", LESION)),
    (r"h(?:a)?emangioma(?:s|ta)?", ("liver_lesion=haemangioma", LESION)),
    (r"(?:simple |hepatic |liver |anechoic )?cysts?", ("liver_lesion=cyst", LESION)),
    (r"(?:focal |solid |discrete )?(?:hepatic |liver )?"
     r"(?:masse?s?|lesions?|nodules?|tumou?rs?|space[- ]occupying lesions?|sols?)",
     ("liver_lesion=mass~", LESION)),
    # Lung.
    (r"(?:few|scattered|isolated|occasional|sparse|rare|1-2|one or two|single) (?:scattered |isolated )?" + BL,
     ("lung_b_lines=few",)),
    (r"(?:confluent|coalescent|coalescing|fused) " + BL + r"|white lung|" + BL + r" confluence",
     ("lung_b_lines=confluent",)),
    (r"(?:multiple|numerous|many|diffuse|several|3 or more|three or more) " + BL,
     ("lung_b_lines=multiple",)),
    (BL + r"(?: pattern| profile| artefacts?| artifacts?)?|b-(?:pattern|profile)|interstitial syndrome",
     ("lung_b_lines=*",)),
    (r"a-?lines?(?: pattern| profile| artefacts?| artifacts?)?|a-(?:pattern|profile)", ("lung_a_lines=present",)),
    (r"small subpleural consolidations?|subpleural consolidations?|subpleural (?:consolidation|infiltrate)s?",
     ("lung_consolidation=subpleural",)),
    (r"lobar consolidations?|(?:lobar|segmental) hepati[sz]ation", ("lung_consolidation=lobar",)),
    (r"consolidations?|consolidated lung|hepati[sz]ation|tissue-like pattern|shred sign"
     r"|(?:dynamic |static )?air bronchograms?",
     ("lung_consolidation=present~",)),
    (r"(?:small |large |moderate )?pleural effusions?|effusions?|pleural fluid|hydrothorax",
     ("lung_effusion=present",)),
    (r"lung point|barcode sign|stratosphere sign", ("lung_sliding=absent",)),
    (r"(?:lung |pleural )?sliding(?: sign)?", ("lung_sliding=present",)),
)

# NegEx-style triggers, (kind, pattern); at one position the first match wins.
_TRIGGERS: tuple[tuple[str, str], ...] = (
    ("pseudo", r"no (?:significant |interval |definite |appreciable |further )?"
               r"(?:change|increase|decrease|growth|enlargement|progression)s?"
               r"|not only|not necessarily|no longer than|gram[- ]negative"
               r"|no further (?:imaging|evaluation|work-?up|follow-?up|action|intervention|management)"
               r"|without (?:change|difficulty|complications?)"
               r"|no (?:suspicious|worrisome|concerning|malignant|aggressive) (?:sonographic )?features"),
    ("unpost", r"(?:cannot|can ?not|could not|can't) be (?:excluded|ruled out)"
               r"|(?:is|are|was|were|has|have)(?: not| been not| not been) (?:excluded|ruled out)|not excluded"),
    ("post", r"(?:(?:is|are|was|were|has been|have been) )?(?:not|no longer) (?:seen|identified|visuali[sz]ed"
             r"|detected|demonstrated|present|appreciated|evident|noted|observed|found)"
             r"|(?:is|are|was|were|has been|have been) (?:absent|excluded|ruled out|resolved)"
             r"|(?:has |have )?resolved|none (?:seen|identified)"),
    ("unpre", r"possible|possibly|questionable|question of|(?:cannot|can ?not|can't) (?:exclude|rule out)"
              r"|rule out|r/o|to exclude|differential(?: diagnosis)? (?:includes?|of)|equivocal"
              r"|(?:may|might|could) represent|concern(?:ing)? for"),
    ("other", r"family history(?: of)?|fh of|(?:her|his) (?:mother|father|sister|brother|aunt)(?:'s)?"),
    ("both", r"absent|abolished"),
    ("pre", r"no(?: sonographic| ultrasound| definite| convincing| significant| obvious| clear)?"
            r" (?:evidence|signs?|features|findings|suggestion)(?: of| for| to suggest)"
            r"|negative for|free of|absence of|lack of|lacks|lacking|without(?: evidence of)?"
            r"|rules? out|ruled out|ruling out|denies|denied|resolution of|neither|nor|never|no|not"),
    ("prefix", r"non(?=-\w)"),
    ("term", r"but|however|although|though|except|apart from|aside from|which|whereas|while|yet|otherwise"
             r"|nevertheless|seen|noted|identified|present|demonstrated|visuali[sz]ed|observed|shows?"
             r"|showing|reveals?|there (?:is|are)|(?:consistent|compatible) with|in keeping with"
             r"|suggestive of|suggesting|indicating|indicative of|representing|(?:most )?likely|due to"
             r"|preserved|intact"),
)
_PRE_WINDOW = {"pre": 6, "unpre": 6, "other": 6, "both": 1, "prefix": 0}
_POST_WINDOW = 5
_SENTENCE_END = re.compile(
    r"[.!?]\s+(?=[A-Z0-9(\"'])|\n[ \t]*\n|\n(?=[ \t]*(?:[-*•]|\d+[.)]\s|[A-Za-z][A-Za-z /&]{1,40}:))"
)
_HEADER = re.compile(r"[ \t]*(?P<name>[A-Za-z][A-Za-z /&]{1,40}?)[ \t]*:")
_SEMICOLON = re.compile(";")
_BLANKS = str.maketrans("\n\r\t\f\v", "     ")
_CONTEXT_HEADERS = frozenset({
    "history", "clinical history", "indication", "indications", "clinical indication",
    "clinical indications", "reason for exam", "reason for examination", "reason for study",
    "reason for referral", "clinical information", "clinical details", "clinical question",
    "technique", "comparison", "procedure",
})
_WORD = re.compile(r"\w+")
_SINGULAR = re.compile(r"(?:is|was|has)\b", re.IGNORECASE)
_LIST = re.compile(r",|\band\b|\bor\b", re.IGNORECASE)

# Absence code per field: what a negated presence of the field's finding means.
ABSENCE: dict[str, str] = {
    "birads_posterior": "none",
    "birads_calcifications": "none",
    "tirads_foci": "none",
    "liver_steatosis": "S0",
    "liver_fibrosis": "F0",
    "liver_lesion": "none",
    "lung_a_lines": "absent",
    "lung_b_lines": "absent",
    "lung_consolidation": "absent",
    "lung_effusion": "absent",
    "lung_sliding": "absent",
}
# Pairs of values that do not contradict each other (one implies or overlaps the other).
_COMPATIBLE: dict[str, tuple[frozenset[str], ...]] = {
    "tirads_margin": (frozenset({"irregular", "extrathyroidal_extension"}),
                      frozenset({"lobulated", "irregular"})),
    "tirads_echogenicity": (frozenset({"hypoechoic", "very_hypoechoic"}),),
    "lung_pleural_line": (frozenset({"irregular", "thickened"}), frozenset({"irregular", "fragmented"}),
                          frozenset({"thickened", "fragmented"})),
    "lung_b_lines": (frozenset({"multiple", "confluent"}),),
    "birads_margin": tuple(frozenset(p) for p in (
        ("indistinct", "angular"), ("indistinct", "microlobulated"), ("indistinct", "spiculated"),
        ("angular", "microlobulated"), ("angular", "spiculated"), ("microlobulated", "spiculated"))),
    "birads_posterior": (frozenset({"combined", "enhancement"}), frozenset({"combined", "shadowing"})),
    "birads_echo_pattern": (frozenset({"complex_cystic_solid", "heterogeneous"}),),
    "birads_category": tuple(frozenset({"4", s}) for s in ("4a", "4b", "4c")),
    "tirads_category": tuple(frozenset({"4", s}) for s in ("4a", "4b", "4c")),
}
# Label pairs that exclude each other, besides "normal" against any other label.
_LABEL_CONFLICTS: frozenset[frozenset[str]] = frozenset({
    frozenset({"benign", "malignant"}), frozenset({"covid", "pneumonia"}),
    frozenset({"viral_pneumonia", "pneumonia"}), frozenset({"cirrhosis", "fibrosis"}),
})
_LESION_LABELS = frozenset({"benign", "malignant"})
_ACR_LEVELS = ((7, "5"), (4, "4"), (3, "3"), (2, "2"), (0, "1"))


def _organs_of(emit: _Emit) -> frozenset[str]:
    if emit.field == LABEL:
        if emit.generic:
            return frozenset({"lung"})
        return frozenset(o for o in ORGANS if emit.value in LABELS[o])
    if emit.field == LESION:
        return frozenset({"breast", "thyroid", "liver"})
    prefix = emit.field.split("_")[0]
    return frozenset({{"birads": "breast", "tirads": "thyroid"}.get(prefix, prefix)})


def _category(field: str, text: str) -> str | None:
    low = text.lower()
    m = re.search(r"([0-6])\s*([abc])?\s*$", low)
    if not m:
        return None
    value = m.group(1) + (m.group(2) or "")
    return value if value in FINDINGS_VOCABULARY[field] else None


def _points_category(text: str) -> str | None:
    m = re.search(r"\d{1,2}", text)
    if not m:
        return None
    points = int(m.group())
    return next(level for floor, level in _ACR_LEVELS if points >= floor)


def _compatible(field: str, a: str, b: str) -> bool:
    return a == b or frozenset({a, b}) in _COMPATIBLE.get(field, ())


_MAX_FIRST_WORDS = 5000
_DIGITS = "0123456789"


def _class_chars(items: list) -> str:
    chars = []
    for op, av in items:
        name = str(op)
        if name == "LITERAL":
            chars.append(chr(av))
        elif name == "RANGE" and av[1] - av[0] < 40:
            chars.extend(chr(c) for c in range(av[0], av[1] + 1))
        elif name == "CATEGORY" and str(av) == "CATEGORY_DIGIT":
            chars.extend(_DIGITS)
        elif name == "CATEGORY" and str(av) == "CATEGORY_SPACE":
            chars.append(" ")
        else:
            raise ValueError(f"cannot expand character class item {name}")
    return "".join(chars)


def _first_words(pattern: str) -> set[str]:
    """Every lowercase first word a pattern can match (the dispatch keys)."""
    found: set[str] = set()

    def walk(items: list, prefix: str, rest: tuple) -> None:
        if len(found) > _MAX_FIRST_WORDS:
            raise ValueError(f"pattern has too many first words: {pattern}")
        if not items:
            if rest:
                walk(rest[0], prefix, rest[1:])
            else:
                found.add(prefix)
            return
        op, av = items[0]
        tail, name = items[1:], str(op)
        if name in ("LITERAL", "IN"):
            for ch in chr(av) if name == "LITERAL" else _class_chars(av):
                if ch.isalnum() or ch == "_":
                    walk(tail, prefix + ch.lower(), rest)
                else:
                    found.add(prefix)
        elif name in ("AT", "ASSERT", "ASSERT_NOT"):
            walk(tail, prefix, rest)
        elif name == "BRANCH":
            for seq in av[1]:
                walk(list(seq), prefix, (tail, *rest))
        elif name == "SUBPATTERN":
            walk(list(av[-1]), prefix, (tail, *rest))
        elif name in ("MAX_REPEAT", "MIN_REPEAT"):
            low, high, sub = av
            if high <= 3:
                for n in range(low, high + 1):
                    walk(list(sub) * n + list(tail), prefix, rest)
            else:
                if low == 0:
                    walk(tail, prefix, rest)
                walk([*sub, ("UNBOUNDED", None)], prefix, ())
        else:
            raise ValueError(f"cannot find the first words of {pattern!r} ({name})")

    walk(list(_sre_parse.parse(pattern, re.IGNORECASE)), "", ())
    if "" in found:
        raise ValueError(f"pattern can start without a word: {pattern!r}")
    return found


class _Dispatch:
    """Tagged patterns, tried only where a text word is one of their first words."""

    def __init__(self, entries: list[tuple[object, str]], end: str) -> None:
        self._tags = [tag for tag, _ in entries]
        keys: dict[str, list[int]] = {}
        for i, (_, pattern) in enumerate(entries):
            if re.compile(pattern).groups:
                raise ValueError(f"pattern has a capturing group: {pattern!r}")
            for word in _first_words(pattern):
                keys.setdefault(word, []).append(i)
        compiled: dict[tuple[int, ...], re.Pattern[str]] = {}
        self._table: dict[str, re.Pattern[str]] = {}
        for word, idx in keys.items():
            key = tuple(idx)
            if key not in compiled:
                alts = "|".join(f"(?P<g{i}>{entries[i][1]})" for i in key)
                compiled[key] = re.compile(f"(?:{alts}){end}", re.IGNORECASE)
            self._table[word] = compiled[key]

    @property
    def keys(self) -> set[str]:
        return set(self._table)

    def scan(self, text: str, words: list[tuple[int, str]]) -> Iterator[tuple[int, int, object]]:
        """Non-overlapping matches, leftmost first, trying only at ``words`` (start, lowercase)."""
        table, done = self._table, 0
        for start, word in words:
            if start < done:
                continue
            regex = table.get(word)
            if regex is None:
                continue
            m = regex.match(text, start)
            if m:
                done = m.end()
                yield start, done, self._tags[int(m.lastgroup[1:])]


def _trie(words: set[str]) -> str:
    """A regular expression matching exactly ``words``, as a trie of literals."""
    root: dict = {}
    for word in words:
        node = root
        for ch in word:
            node = node.setdefault(ch, {})
        node[""] = {}

    def build(node: dict) -> str:
        branches = [re.escape(ch) + build(child) for ch, child in sorted(node.items()) if ch]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        return f"(?:{body})?" if "" in node else body

    return build(root)


_TRIGGER_DISPATCH = _Dispatch(list(_TRIGGERS), r"\b")


@dataclass(frozen=True)
class _Entry:
    pattern: str
    emits: tuple[_Emit, ...]


class FindingsMatcher:
    """Finds findings and diagnosis statements in report or caption text."""

    def __init__(self) -> None:
        entries = [_Entry(p, tuple(_emit(spec) for spec in specs)) for p, specs in _LEXICON]
        self._dispatch: dict[str | None, _Dispatch] = {}
        self._words: dict[str | None, tuple[re.Pattern[str], re.Pattern[str]]] = {}
        for organ in (None, *ORGANS):
            kept: list[tuple[object, str]] = []
            for entry in entries:
                emits = tuple(e for e in entry.emits if organ is None or organ in _organs_of(e))
                if emits or not entry.emits:
                    kept.append((emits, entry.pattern))
            self._dispatch[organ] = _Dispatch(kept, r"(?![\w-])")
            trie = _trie(self._dispatch[organ].keys | _TRIGGER_DISPATCH.keys)
            self._words[organ] = (
                re.compile(rf"\b{trie}\b"), re.compile(rf"\b{trie}\b", re.IGNORECASE)
            )

    def statements(self, text: str, organ: str | None = None) -> list[Statement]:
        """Every mention in ``text``, negated or not; ``organ`` None means all organs."""
        return [
            Statement(m.emit.field, m.emit.value, m.negated, m.start, m.end, m.sentence)
            for m in self._mentions(text, organ)
        ]

    def findings(self, text: str, organ: str) -> dict[str, str]:
        """Asserted findings of ``organ`` as schema codes, one value per field."""
        chosen: dict[str, tuple[int, str]] = {}
        for m in self._mentions(text, organ):
            if not m.asserted or m.emit.field in (LABEL, LESION):
                continue
            value = self._derived(m)
            if value is None:
                continue
            field = m.emit.field
            rank = self._rank(field, value, m.emit.generic)
            if field not in chosen or rank > chosen[field][0]:
                chosen[field] = (rank, value)
        return {field: value for field, (_, value) in chosen.items()}

    def contradictions(
        self, text: str, organ: str, label: str | None, findings: dict[str, str | None]
    ) -> list[str]:
        """Reasons why ``text`` states the opposite of the record's label or findings."""
        reasons: list[str] = []
        sentences = None
        lesion_record = (label in _LESION_LABELS and organ != "lung") or (
            findings.get("liver_lesion") not in (None, "none")
        )
        for m in self._mentions(text, organ):
            if not m.asserted:
                continue
            if sentences is None:
                sentences = self._sentences(text)
            quote = " ".join(text[sentences[m.sentence][0]:sentences[m.sentence][1]].split())
            if len(quote) > 120:
                quote = quote[:117] + "..."
            field, value = m.emit.field, m.emit.value
            reason = None
            if field == LABEL:
                reason = self._label_reason(m, label)
            elif field == LESION:
                if m.negated and lesion_record:
                    reason = f"denies a lesion but the record has label {label}"
                elif not m.negated and label == "normal":
                    reason = "describes a lesion but the record label is normal"
            else:
                record = findings.get(field)
                if record is None:
                    continue
                if m.negated and not m.emit.generic and value == record:
                    reason = f"negates {field}={value}, which the record has"
                elif self._conflicts(field, m, record):
                    stated = self._derived(m) if m.negated else value
                    reason = f"states {field}={stated} but the record has {field}={record}"
            if reason:
                full = f'"{quote}" {reason}'
                if full not in reasons:
                    reasons.append(full)
        return reasons

    def _label_reason(self, m: _Mention, label: str | None) -> str | None:
        if label is None:
            return None
        value = m.emit.value
        if m.negated:
            if value == label or (m.emit.generic and label in ("covid", "pneumonia", "viral_pneumonia")):
                return f"negates the diagnosis {value}, but the record label is {label}"
            return None
        if m.emit.generic:
            return None if label != "normal" else f"states {value} but the record label is normal"
        if frozenset({value, label}) in _LABEL_CONFLICTS:
            return f"states {value} but the record label is {label}"
        if value == "normal" and label != "normal":
            return f"states normal but the record label is {label}"
        if label == "normal" and value != "normal":
            return f"states {value} but the record label is normal"
        return None

    @staticmethod
    def _conflicts(field: str, m: _Mention, record: str) -> bool:
        if m.negated:
            derived = FindingsMatcher._derived(m)
            return derived is not None and not _compatible(field, derived, record)
        if m.emit.generic:
            return record == ABSENCE.get(field)
        return not _compatible(field, m.emit.value, record)

    @staticmethod
    def _derived(m: _Mention) -> str | None:
        """The schema code a mention asserts, or None."""
        field, value = m.emit.field, m.emit.value
        vocab = FINDINGS_VOCABULARY[field]
        if not m.negated:
            return value if value in vocab else None
        if m.emit.generic or value == PRESENT:
            return ABSENCE.get(field) if m.emit.absence_ok else None
        if len(vocab) == 2 and field not in ABSENCE:
            return vocab[1 - vocab.index(value)]
        return None

    @staticmethod
    def _rank(field: str, value: str, generic: bool) -> int:
        if value == ABSENCE.get(field):
            return -1
        return FINDINGS_VOCABULARY[field].index(value) - (100 if generic else 0)

    @staticmethod
    def _sentences(text: str) -> list[tuple[int, int]]:
        bounds, start = [], 0
        for m in _SENTENCE_END.finditer(text):
            cut = m.start() + (text[m.start()] in ".!?")
            bounds.append((start, cut))
            start = m.end()
        bounds.append((start, len(text)))
        return bounds

    @staticmethod
    def _context(text: str) -> list[tuple[int, int]]:
        spans, open_at, offset = [], None, 0
        for line in text.split("\n"):
            m = _HEADER.match(line) if ":" in line else None
            if m:
                if open_at is not None:
                    spans.append((open_at, offset))
                    open_at = None
                if m.group("name").strip().lower() in _CONTEXT_HEADERS:
                    open_at = offset
            offset += len(line) + 1
        if open_at is not None:
            spans.append((open_at, len(text)))
        return spans

    def _mentions(self, text: str, organ: str | None) -> list[_Mention]:
        if organ not in self._dispatch:
            raise ValueError(f"organ {organ!r} is not one of {ORGANS} (or None)")
        sentences = self._sentences(text)
        context = self._context(text)
        text = text.translate(_BLANKS)
        lowered = text.lower()
        exact, folded = self._words[organ]
        if len(lowered) == len(text):
            words = [(m.start(), m.group()) for m in exact.finditer(lowered)]
        else:
            words = [(m.start(), m.group().lower()) for m in folded.finditer(text)]
        found = [(s, e, emits) for s, e, emits in self._dispatch[organ].scan(text, words) if emits]
        if not found:
            return []
        sentence_starts = [s for s, _ in sentences]
        spans = [(s, e) for s, e, _ in found]
        raw = list(_TRIGGER_DISPATCH.scan(text, words))
        if ";" in text:
            raw.extend((m.start(), m.end(), "semi") for m in _SEMICOLON.finditer(text))
            raw.sort()
        triggers: list[tuple[int, int, str]] = []
        for start, end, kind in raw:
            i = bisect_right(spans, (start, len(text) + 1)) - 1
            if i >= 0 and spans[i][1] > start:
                continue
            if i + 1 < len(spans) and spans[i + 1][0] < end:
                continue
            triggers.append((start, end, kind))
        trigger_starts = [t[0] for t in triggers]
        out: list[_Mention] = []
        for start, end, emits in found:
            sentence = bisect_right(sentence_starts, start) - 1
            s_start, s_end = sentences[sentence]
            kind = self._scope(text, triggers, trigger_starts, start, end, s_start, s_end)
            in_context = any(a <= start < b for a, b in context)
            for emit in emits:
                if emit.value == "?":
                    value = _category(emit.field, text[start:end])
                    if value is None:
                        continue
                    emit = _Emit(emit.field, value)
                elif emit.value == "#":
                    value = _points_category(text[start:end])
                    if value is None:
                        continue
                    emit = _Emit(emit.field, value)
                out.append(_Mention(
                    emit, start, end, sentence,
                    negated=kind == "neg", uncertain=kind == "uncertain", other=kind == "other",
                    context=in_context,
                ))
        return out

    @staticmethod
    def _scope(
        text: str, triggers: list[tuple[int, int, str]], starts: list[int],
        start: int, end: int, s_start: int, s_end: int,
    ) -> str | None:
        """``neg``, ``uncertain``, ``other`` or None for the mention at ``start:end``."""
        lo, hi = bisect_left(starts, s_start), bisect_left(starts, s_end)
        before = bisect_left(starts, start, lo, hi)
        for j in range(before - 1, lo - 1, -1):
            t_start, t_end, kind = triggers[j]
            if kind in ("term", "semi", "post", "unpost"):
                break
            if kind == "pseudo":
                continue
            gap = len(_WORD.findall(text, t_end, start))
            if gap > _PRE_WINDOW[kind]:
                break
            return {"pre": "neg", "both": "neg", "prefix": "neg", "unpre": "uncertain"}.get(kind, "other")
        for j in range(before, hi):
            t_start, t_end, kind = triggers[j]
            if t_start < end:
                continue
            if kind in ("term", "semi", "pre", "prefix", "unpre", "other"):
                return None
            if kind in ("post", "unpost", "both"):
                between = text[end:t_start]
                if len(_WORD.findall(between)) > _POST_WINDOW:
                    return None
                if _SINGULAR.match(text, t_start) and _LIST.search(between):
                    return None
                return "neg" if kind != "unpost" else "uncertain"
        return None
