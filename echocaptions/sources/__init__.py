"""Source adapters, one module per public layout; importing this registers them all."""

from echocaptions.sources.base import Source, SourceError, get_source_class, register, registry

__all__ = ["Source", "SourceError", "get_source_class", "register", "registry"]
