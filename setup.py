"""Build hook: ship the packs in rules/ inside the package (nerve/data/rules)."""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildWithPacks(build_py):
    def run(self) -> None:
        super().run()
        target = Path(self.build_lib) / "nerve" / "data" / "rules"
        target.mkdir(parents=True, exist_ok=True)
        for pack in sorted(Path(__file__).parent.joinpath("rules").glob("*.yaml")):
            shutil.copyfile(pack, target / pack.name)


setup(cmdclass={"build_py": BuildWithPacks})
