"""Every adapter is registered by importing echocaptions.sources, and describes itself."""

from __future__ import annotations

from echocaptions.schema import ORGANS
from echocaptions.sources import registry

LAYOUTS = {"busi", "ddti", "aul", "pocus", "report_corpus", "imagefolder", "manifest"}


def test_all_layouts_are_registered() -> None:
    known = registry()
    assert set(known) >= LAYOUTS
    for layout in LAYOUTS:
        cls = known[layout]
        assert cls.layout == layout
        assert cls.expected and cls.published
        assert set(cls.organs) <= set(ORGANS)
