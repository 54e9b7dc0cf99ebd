"""The built wheel carries templates, prompts, recipes and package data and works from any folder."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dist = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(REPO)],
        check=True,
        timeout=300,
    )
    return next(dist.glob("echocaptions-*.whl"))


def test_wheel_ships_bundled_folders(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    for kind, folder in (("recipes", "recipes"), ("templates", "templates"), ("zeroshot", "train_min/zeroshot")):
        bundled = [n for n in names if n.startswith(f"echocaptions/_bundled/{kind}/")]
        source = [p for p in (REPO / folder).rglob("*") if p.is_file()]
        assert len(bundled) == len(source) > 0, kind
    assert "echocaptions/_bundled/recipes/demo.yaml" in names


def test_wheel_ships_package_data(wheel: Path) -> None:
    """Word lists (``assets/``) and the report's HTML template are read at run time, so they must ship."""
    names = set(zipfile.ZipFile(wheel).namelist())
    package = REPO / "echocaptions"
    data = [*(package / "assets").rglob("*.txt"), *(package / "publish" / "templates").glob("*.j2")]
    assert len(data) > 20
    for path in data:
        assert path.relative_to(REPO).as_posix() in names, path
    for name in ("assets/deid/first_names.txt", "assets/tokens/clip_lexicon.txt", "publish/templates/report.html.j2"):
        assert f"echocaptions/{name}" in names


def test_installed_wheel_builds_demo_from_another_folder(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    site = subprocess.run(
        [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()
    # Dependencies come from this environment (no network); the package itself from the wheel.
    Path(site, "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", str(wheel)], check=True, timeout=300)
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    where = subprocess.run(
        [str(py), "-c", "import echocaptions; print(echocaptions.__file__)"],
        cwd=work, check=True, capture_output=True, text=True, env=env,
    ).stdout
    assert where.startswith(str(venv)), where
    subprocess.run(
        [str(venv / "bin" / "echocaptions"), "build", "--recipe", "demo", "--quiet",
         "--set", "synth.per_class=1", "--set", "synth.size=[64, 96]", "--set", "image.max_side=96"],
        cwd=work, check=True, timeout=600, env=env,
    )
    assert list((work / "out" / "demo" / "data").glob("train-*.parquet"))
    assert (work / "data" / "demo-phantom").is_dir()
    # the report reads its template from the installed package
    subprocess.run([str(venv / "bin" / "echocaptions"), "report", "out/demo", "--per-class", "1"],
                   cwd=work, check=True, timeout=300, env=env)
    assert "<!DOCTYPE html>" in (work / "out" / "demo" / "report.html").read_text(encoding="utf-8")
