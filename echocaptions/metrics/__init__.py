"""Caption corpus metrics."""

from echocaptions.metrics.diversity import (
    DiversityReport,
    diversity,
    findings_fidelity,
    grouped,
    mtld,
    names_finding,
    self_bleu,
    tokenize,
)

__all__ = [
    "DiversityReport",
    "diversity",
    "findings_fidelity",
    "grouped",
    "mtld",
    "names_finding",
    "self_bleu",
    "tokenize",
]
