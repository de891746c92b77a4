"""Build hook: ship rules/ (packs) and resources/ (icons, styles) inside the
package, as nerve/data/rules and nerve/data/resources."""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildWithPacks(build_py):
    def run(self) -> None:
        super().run()
        here = Path(__file__).parent
        for folder, pattern in (
            ("rules", "*.yaml"),
            ("rules/library", "*.yaml"),
            ("resources", "*"),
        ):
            target = Path(self.build_lib) / "nerve" / "data" / folder
            target.mkdir(parents=True, exist_ok=True)
            for item in sorted(here.joinpath(folder).glob(pattern)):
                if item.is_file():
                    shutil.copyfile(item, target / item.name)


setup(cmdclass={"build_py": BuildWithPacks})
