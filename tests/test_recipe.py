"""Recipes: bundled ones validate; errors name the file, key and allowed values."""

from __future__ import annotations

from pathlib import Path

import pytest

from echocaptions.recipe import RecipeError, list_recipes, load_recipe
from echocaptions.sources import get_source_class


@pytest.mark.parametrize("name", ["breast", "thyroid", "liver", "lung", "multiorgan", "demo"])
def test_bundled_recipes_validate_and_name_known_layouts(name: str) -> None:
    recipe = load_recipe(name)
    assert recipe.name == name
    for spec in recipe.sources:
        get_source_class(spec.layout)


def test_list_recipes() -> None:
    assert {"breast", "thyroid", "liver", "lung", "multiorgan", "demo"} <= set(list_recipes())


def test_bad_value_names_file_key_and_allowed_values(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\nsources:\n  - {name: a, layout: busi, path: p, role: holdout}\n")
    with pytest.raises(RecipeError) as err:
        load_recipe(path)
    text = str(err.value)
    assert str(path) in text and "sources.0.role" in text and "'train'" in text and "'eval'" in text


def test_unknown_key_and_bad_fractions(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "name: x\nsources:\n  - {name: a, layout: busi, path: p}\n"
        "splits: {train: 0.5, validation: 0.1, test: 0.1}\ncaptoins: {}\n"
    )
    with pytest.raises(RecipeError) as err:
        load_recipe(path)
    text = str(err.value)
    assert "captoins: unknown key" in text
    assert "sum to 1.0" in text


def test_overrides(tmp_path: Path) -> None:
    recipe = load_recipe(
        "thyroid",
        data_root=tmp_path,
        out=tmp_path / "out",
        sources={"ddti": str(tmp_path / "elsewhere")},
        overrides=["seed=5", "splits.train=0.6", "splits.validation=0.2", "splits.test=0.2", "sources.reports.limit=3"],
    )
    assert recipe.seed == 5
    assert recipe.splits.train == 0.6
    assert recipe.source_root(recipe.sources[0]) == (tmp_path / "elsewhere").resolve()
    reports = next(s for s in recipe.sources if s.name == "reports")
    assert recipe.source_root(reports) == tmp_path.resolve() / "ultrasound_reports"
    assert reports.limit == 3
    assert recipe.out_dir() == (tmp_path / "out").resolve()


def test_override_errors() -> None:
    with pytest.raises(RecipeError, match="KEY=VALUE"):
        load_recipe("thyroid", overrides=["seed"])
    with pytest.raises(RecipeError, match="no source named 'nope'"):
        load_recipe("thyroid", sources={"nope": "/x"})
    with pytest.raises(RecipeError, match="allowed values"):
        load_recipe("thyroid", overrides=["captions.policy=[report, poem]"])
    with pytest.raises(RecipeError, match="no bundled recipe named 'kidney'"):
        load_recipe("kidney")


def test_captions_preview_prints_examples_per_level(phantom_root: Path) -> None:
    from typer.testing import CliRunner

    from echocaptions.cli import app

    result = CliRunner().invoke(
        app, ["captions", "preview", "--recipe", "thyroid", "--data-root", str(phantom_root), "--n", "2"]
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "findings level (2)" and "TI-RADS" in lines[1]
    assert any(line.startswith("diagnosis level") for line in lines)
    assert all("breast" not in line for line in lines), "organ filters of the recipe apply"
