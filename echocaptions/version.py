"""The installed echocaptions version (fingerprints and cluster checks compare it)."""

from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=1)
def package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("echocaptions")
    except PackageNotFoundError:
        return "unknown (not installed)"
