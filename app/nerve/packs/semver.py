"""Pack versions: semantic versions (https://semver.org, 2.0.0), compared exactly.

``MAJOR.MINOR.PATCH``, then an optional pre-release (``-alpha.1``) and build
metadata (``+build.5``). Precedence is semver's: numbers compare as numbers;
a pre-release is lower than its release; pre-release identifiers compare one
by one (numeric ones as numbers and below alphanumeric ones, which compare in
ASCII order; a longer list wins when all before are equal); build metadata is
ignored. Two forgiving spellings are taken too, because pack authors write
them: a leading ``v`` (``v1.2.0``) and one or two parts (``1``, ``1.2``,
or a YAML number ``1.2``), read as ``1.0.0`` and ``1.2.0``.

(``packaging`` compares PEP 440 versions, whose pre-release rules differ:
``1.0.0-alpha.beta`` is not a PEP 440 version at all.)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import total_ordering

__all__ = ["InvalidVersion", "Version", "parse"]

_NUM = r"0|[1-9][0-9]*"
_PRE_ID = r"0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*"
_BUILD_ID = r"[0-9A-Za-z-]+"
_VERSION = re.compile(
    rf"v?(?P<major>{_NUM})(?:\.(?P<minor>{_NUM})(?:\.(?P<patch>{_NUM}))?)?"
    rf"(?:-(?P<pre>(?:{_PRE_ID})(?:\.(?:{_PRE_ID}))*))?"
    rf"(?:\+(?P<build>{_BUILD_ID}(?:\.{_BUILD_ID})*))?",
    re.ASCII,
)


class InvalidVersion(ValueError):
    """Not a semantic version; the message says why, for the user."""


@total_ordering
@dataclass(frozen=True)
class Version:
    major: int
    minor: int
    patch: int
    pre: tuple[int | str, ...] = ()
    build: tuple[str, ...] = ()

    def _key(self) -> tuple[int, int, int, int, tuple[tuple[int, int | str], ...]]:
        # A release (no pre-release) sorts after all of its pre-releases.
        pre = tuple((0, p) if isinstance(p, int) else (1, p) for p in self.pre)
        return (self.major, self.minor, self.patch, 0 if self.pre else 1, pre)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __lt__(self, other: Version) -> bool:
        return self._key() < other._key()

    def __str__(self) -> str:
        text = f"{self.major}.{self.minor}.{self.patch}"
        if self.pre:
            text += "-" + ".".join(str(p) for p in self.pre)
        if self.build:
            text += "+" + ".".join(self.build)
        return text


def parse(text: object) -> Version:
    """``text`` as a version; raises InvalidVersion."""
    value = str(text).strip()
    match = _VERSION.fullmatch(value)
    if match is None:
        raise InvalidVersion(
            f"version {value!r} is not a semantic version (MAJOR.MINOR.PATCH, "
            "e.g. 1.4.0 or 2.0.0-beta.1)"
        )
    pre = match.group("pre")
    build = match.group("build")
    return Version(
        int(match.group("major")),
        int(match.group("minor") or 0),
        int(match.group("patch") or 0),
        tuple(int(p) if p.isdigit() else p for p in pre.split(".")) if pre else (),
        tuple(build.split(".")) if build else (),
    )


def try_parse(text: object) -> Version | None:
    """``text`` as a version, or None when it is not one (or is empty)."""
    if text is None or str(text).strip() == "":
        return None
    try:
        return parse(text)
    except InvalidVersion:
        return None
