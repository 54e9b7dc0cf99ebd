"""README.md tells the truth about the layouts: its table is `echocaptions sources --markdown`."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from echocaptions.cli import app, sources_markdown
from echocaptions.recipe import list_recipes, load_recipe
from echocaptions.schema import COLUMNS, schema_markdown
from echocaptions.sources import registry

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_layout_table_is_the_registry() -> None:
    text = README.read_text(encoding="utf-8")
    table = text.split("<!-- sources:begin -->\n", 1)[1].split("<!-- sources:end -->", 1)[0]
    assert table == sources_markdown(), "regenerate with: echocaptions sources --markdown"
    for layout in registry():
        assert f"| `{layout}` |" in table


def test_readme_schema_table_is_the_field_table() -> None:
    text = README.read_text(encoding="utf-8")
    table = text.split("<!-- schema:begin -->\n", 1)[1].split("<!-- schema:end -->", 1)[0]
    assert table == schema_markdown(), (
        "regenerate with: python -c 'from echocaptions.schema import schema_markdown; "
        "print(schema_markdown(), end=\"\")'"
    )
    for column in COLUMNS:
        assert f"`{column}`" in table


def test_every_public_layout_says_where_to_get_it() -> None:
    generic = {"dicom", "nifti", "imagefolder", "manifest"}
    for layout, cls in registry().items():
        assert cls.download and cls.folder and cls.published, layout
        assert cls.required or cls.expected, layout
        if layout not in generic:
            assert cls.quirks, f"{layout}: say what the real files hold"


def test_bundled_recipes_use_the_documented_folders() -> None:
    layouts = registry()
    for name in list_recipes():
        if name == "demo":
            continue  # the demo reads the phantom it writes
        for spec in load_recipe(name).sources:
            folder = layouts[spec.layout].folder
            assert spec.path.rstrip("/") == folder.split(" ")[0].rstrip("/"), (name, spec.name, spec.path, folder)


def test_sources_command_prints_download_and_quirks() -> None:
    result = CliRunner().invoke(app, ["sources"])
    assert result.exit_code == 0
    assert "unpack to: DATA_ROOT/DDTI" in result.output
    assert "git lfs pull" in result.output
    result = CliRunner().invoke(app, ["sources", "--markdown"])
    assert result.output == sources_markdown()
