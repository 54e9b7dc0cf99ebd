"""Phantom sources for the adapter tests: small, written once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from echocaptions.schema import Reject, SourceItem
from echocaptions.sources import Source, get_source_class

PER_CLASS = 2
SIZE = (96, 128)


@pytest.fixture(scope="session")
def phantom(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from echocaptions.synth import make_phantom

    return make_phantom(tmp_path_factory.mktemp("phantom"), per_class=PER_CLASS, seed=3, size=SIZE)


@pytest.fixture(scope="session")
def broken_phantom(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from echocaptions.synth import make_phantom

    return make_phantom(
        tmp_path_factory.mktemp("broken"), per_class=PER_CLASS, seed=3, size=SIZE, broken=True
    )


@pytest.fixture
def no_pixels(monkeypatch: pytest.MonkeyPatch, phantom: dict[str, Path], broken_phantom: dict[str, Path]) -> None:
    """Fail the test if an adapter opens an image or a video."""
    import av
    import PIL.Image

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"a source adapter decoded pixels: {args[:1]}")

    monkeypatch.setattr(PIL.Image, "open", refuse)
    monkeypatch.setattr(av, "open", refuse)


def read(layout: str, root: Path | str, options: dict | None = None) -> tuple[list[SourceItem], list[Reject]]:
    """All items and rejects of one source, after ``check()``."""
    source: Source = get_source_class(layout)(layout, root, options)
    source.check()
    entries = list(source.items())
    items = [e for e in entries if isinstance(e, SourceItem)]
    rejects = [e for e in entries if isinstance(e, Reject)]
    assert len(items) + len(rejects) == len(entries)
    return items, rejects


def reasons(rejects: list[Reject]) -> dict[str, str]:
    """Reject path -> reason."""
    return {r.path: r.reason for r in rejects}
