"""Source adapters, one module per public layout; importing this registers them all."""

from echocaptions.sources import (  # noqa: F401  (each module registers its adapter)
    aul,
    breast_lesions_usg,
    bus_bra,
    busi,
    covid_blues,
    ddti,
    dicom_folder,
    fatty_liver,
    imagefolder,
    liver_fibrosis,
    manifest,
    nifti_folder,
    pocus,
    report_corpus,
    stanford_thyroid,
    tn3k,
)
from echocaptions.sources.base import Source, SourceError, get_source_class, register, registry

__all__ = ["Source", "SourceError", "get_source_class", "register", "registry"]
