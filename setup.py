"""Ship templates/, prompts/, recipes/ and train_min/zeroshot/ inside the wheel.

They stay at the top of the repository for people to read and edit; the build
copies them to ``echocaptions/_bundled/`` so an installed package finds them.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

# name inside echocaptions/_bundled/ -> folder in the repository
BUNDLED = {"templates": "templates", "prompts": "prompts", "recipes": "recipes", "zeroshot": "train_min/zeroshot"}


class BuildWithBundled(build_py):
    def run(self) -> None:
        super().run()
        root = Path(__file__).resolve().parent
        target = Path(self.build_lib) / "echocaptions" / "_bundled"
        for name, folder in BUNDLED.items():
            src = root / folder
            if src.is_dir():
                shutil.copytree(src, target / name, dirs_exist_ok=True)


setup(cmdclass={"build_py": BuildWithBundled})
