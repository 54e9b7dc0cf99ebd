"""The one registry style (echocaptions.registry) and the four registries built on it."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from echocaptions.registry import Registry, RegistryError, UnknownNameError

# -- the generic class -------------------------------------------------------------


def test_register_as_a_decorator_and_as_a_call() -> None:
    shapes: Registry[object] = Registry("shape")

    @shapes.register("round")
    class Round:
        pass

    square = object()
    assert shapes.register("square", square) is square
    assert Round.__name__ == "Round", "the decorator returns the class itself"
    assert shapes.get("round") is Round and shapes.get("square") is square
    assert "round" in shapes and "oval" not in shapes and ["x"] not in shapes
    assert len(shapes) == 2
    assert shapes.names() == ("round", "square")
    assert shapes.values() == (Round, square)
    assert shapes.items() == (("round", Round), ("square", square))
    assert list(shapes) == ["round", "square"]


def test_registering_the_same_object_again_changes_nothing() -> None:
    shapes: Registry[object] = Registry("shape")
    a, b = object(), object()
    shapes.register("a", a)
    shapes.register("b", b)
    shapes.register("b", b, first=True)
    assert shapes.items() == (("a", a), ("b", b))


def test_a_different_object_under_a_taken_name_is_an_error() -> None:
    shapes: Registry[object] = Registry("shape")
    shapes.register("round", 1)
    with pytest.raises(RegistryError, match="shape 'round' registered twice") as err:
        shapes.register("round", 2)
    assert isinstance(err.value, ValueError)
    with pytest.raises(RegistryError, match="registered twice"):
        shapes.register("round")(3)
    assert shapes.get("round") == 1 and len(shapes) == 1
    with pytest.raises(RegistryError, match="non-empty string name"):
        shapes.register("", 4)


def test_an_unknown_name_says_the_kind_the_name_and_the_sorted_names() -> None:
    shapes: Registry[int] = Registry("shape")
    for name in ("square", "oval", "round"):
        shapes.register(name, len(name))
    with pytest.raises(UnknownNameError) as err:
        shapes.get("hexagon")
    assert str(err.value) == "unknown shape 'hexagon'; available: oval, round, square"
    assert isinstance(err.value, ValueError) and isinstance(err.value, LookupError)
    with pytest.raises(UnknownNameError, match="unknown shape 'x'; available: none registered"):
        Registry[int]("shape").get("x")


def test_the_error_class_of_an_unknown_name_can_be_chosen() -> None:
    class MyError(RuntimeError):
        pass

    shapes: Registry[int] = Registry("shape", error=MyError)
    shapes.register("round", 1)
    with pytest.raises(MyError, match=r"^unknown shape 'oval'; available: round$"):
        shapes.get("oval")


def test_order_is_registration_order_and_first_puts_a_name_in_front() -> None:
    readers: Registry[str] = Registry("reader")
    readers.register("b", "B")
    readers.register("c", "C")
    readers.register("a", "A", first=True)

    @readers.register("z", first=True)
    def z() -> None: ...

    readers.register("d", "D")
    assert readers.names() == ("z", "a", "b", "c", "d")
    assert repr(readers) == "Registry('reader', ['z', 'a', 'b', 'c', 'd'])"


def test_the_registry_module_imports_nothing_from_the_package() -> None:
    import ast

    import echocaptions.registry as module

    tree = ast.parse(Path(module.__file__).read_text(encoding="utf-8"))
    names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    names += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and not n.level]
    assert not [n for n in names if n.split(".")[0] == "echocaptions"]
    assert not [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level]


# -- the four registries -------------------------------------------------------------


def test_every_layout_of_echocaptions_sources_is_in_the_source_registry() -> None:
    from echocaptions.cli import app
    from echocaptions.sources import SourceError, get_source_class, registry
    from echocaptions.sources.base import SOURCE_LAYOUTS

    result = CliRunner().invoke(app, ["sources"])
    assert result.exit_code == 0, result.output
    listed = [line.split()[0] for line in result.output.splitlines() if line and not line[0].isspace()]
    assert listed and isinstance(SOURCE_LAYOUTS, Registry)
    assert set(listed) == set(SOURCE_LAYOUTS.names()) == set(registry())
    assert list(registry()) == sorted(listed)
    for layout in listed:
        assert get_source_class(layout) is SOURCE_LAYOUTS.get(layout)
        assert get_source_class(layout).layout == layout
    with pytest.raises(SourceError) as err:
        get_source_class("nope")
    assert str(err.value) == f"unknown source layout 'nope'; available: {', '.join(sorted(listed))}"


def test_a_second_adapter_under_a_taken_layout_is_refused() -> None:
    from echocaptions.sources import register
    from echocaptions.sources.busi import BusiSource

    assert register(BusiSource) is BusiSource
    impostor = type("Impostor", (BusiSource,), {})
    with pytest.raises(ValueError, match="layout 'busi' registered twice"):
        register(impostor)


def test_the_executors_are_a_registry_of_factories() -> None:
    from echocaptions.executors import EXECUTOR_FACTORIES, EXECUTORS, LocalExecutor, get_executor

    assert isinstance(EXECUTOR_FACTORIES, Registry)
    assert EXECUTORS == EXECUTOR_FACTORIES.names() == ("local", "ray")
    assert all(callable(factory) for factory in EXECUTOR_FACTORIES.values())
    executor = get_executor("local", 1)
    try:
        assert isinstance(executor, LocalExecutor)
    finally:
        executor.close()
    with pytest.raises(ValueError, match="unknown executor 'dask'; available: local, ray"):
        get_executor("dask", 1)


def test_the_readers_are_a_registry_in_the_order_they_are_tried() -> None:
    import echocaptions.imaging.dicom  # noqa: F401
    import echocaptions.imaging.nifti  # noqa: F401
    from echocaptions.imaging.readers import IMAGE_READERS, reader_for

    assert isinstance(IMAGE_READERS, Registry)
    names = IMAGE_READERS.names()
    assert {"pillow", "gif", "video", "dicom", "nifti"} <= set(names)
    # DICOM and NIfTI are registered with priority, ahead of the built-in readers.
    assert max(names.index("dicom"), names.index("nifti")) < names.index("pillow")
    assert names.index("pillow") < names.index("gif") < names.index("video")
    # the Stanford adapter's HDF5 frame reader, registered when the sources are imported, reads .h5 clips
    import echocaptions.sources  # noqa: F401

    assert reader_for(Path("clip.h5")) is IMAGE_READERS.get("hdf5")
    assert reader_for(Path("scan.dcm")) is IMAGE_READERS.get("dicom")
    assert reader_for(Path("scan.nii.gz")) is IMAGE_READERS.get("nifti")
    assert reader_for(Path("a.png")) is IMAGE_READERS.get("pillow")


def test_the_phantom_layouts_are_a_registry() -> None:
    import echocaptions.synth  # noqa: F401  (imports every layout_*.py module)
    from echocaptions.synth.layouts import (
        LAYOUT_FOLDERS,
        LAYOUT_ORGANS,
        PHANTOM_LAYOUTS,
        register_layout,
    )

    assert isinstance(PHANTOM_LAYOUTS, Registry)
    expected = {"busi", "ddti", "aul", "pocus", "report_corpus", "report_corpus_zh", "bus_bra",
                "breast_lesions_usg", "tn3k", "stanford_thyroid", "fatty_liver", "liver_fibrosis",
                "covid_blues", "dicom", "nifti"}
    assert set(PHANTOM_LAYOUTS.names()) == expected == set(LAYOUT_FOLDERS) == set(LAYOUT_ORGANS)
    assert PHANTOM_LAYOUTS.names()[:4] == ("busi", "ddti", "aul", "pocus")
    with pytest.raises(ValueError, match="phantom layout 'busi' registered twice"):
        register_layout("busi", "elsewhere", ("breast",), lambda root, ctx: root)
    assert LAYOUT_FOLDERS["busi"] == "BUSI", "a refused registration changes nothing"
