"""The app's icons: SVGs in ``resources/``, drawn by hand when those are missing."""

from __future__ import annotations

from functools import cache

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QIcon, QPainter, QPixmap

from nerve.paths import resources_dir

#: The shipped resources (package data, or resources/ in a checkout).
RESOURCES = resources_dir()

_FALLBACK_COLORS = {"nerve": "#2b6cb0", "nerve-paused": "#718096", "nerve-error": "#c53030"}


@cache
def icon(name: str) -> QIcon:
    """``nerve``, ``nerve-paused`` or ``nerve-error``."""
    path = RESOURCES / f"{name}.svg"
    if path.exists():
        loaded = QIcon(str(path))
        if not loaded.isNull():
            return loaded
    pixmap = QPixmap(64, 64)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setBrush(QColor(_FALLBACK_COLORS.get(name, "#2b6cb0")))
    painter.setPen(Qt.PenStyle.NoPen)
    painter.drawEllipse(2, 2, 60, 60)
    painter.end()
    return QIcon(pixmap)
