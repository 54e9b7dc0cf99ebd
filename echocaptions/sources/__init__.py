"""Source adapters, one module per public layout; importing this registers them all."""

from echocaptions.sources import (  # noqa: F401  (each module registers its adapter)
    aul,
    busi,
    ddti,
    imagefolder,
    manifest,
    pocus,
    report_corpus,
)
from echocaptions.sources.base import Source, SourceError, get_source_class, register, registry

__all__ = ["Source", "SourceError", "get_source_class", "register", "registry"]
