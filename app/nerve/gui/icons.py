"""The app's icons and status colours, readable on light and dark themes.

App icons are SVGs in ``resources/`` (a ``<name>-dark.svg`` variant is used
on a dark palette when there is one), drawn by hand when they are missing.
Status marks (a run's result) and status colours are drawn here from two
palettes, one for light and one for dark backgrounds; which one applies
follows the application palette, so a theme switch at run time (Qt 6.5+
``QStyleHints.colorSchemeChanged``, or a new palette) only needs
:func:`forget_theme` and a repaint.
"""

from __future__ import annotations

from functools import cache

from PySide6.QtCore import QPointF, QRectF
from PySide6.QtGui import (
    QColor,
    QGuiApplication,
    QIcon,
    QPainter,
    QPainterPath,
    QPalette,
    QPen,
    QPixmap,
)

from nerve.paths import resources_dir

#: The shipped resources (package data, or resources/ in a checkout).
RESOURCES = resources_dir()

_FALLBACK_COLORS = {"nerve": "#2b6cb0", "nerve-paused": "#718096", "nerve-error": "#c53030"}

#: Status colours: (on a light background, on a dark background).
_STATUS_COLORS = {
    "ok": ("#2e7d32", "#81c784"),
    "failed": ("#c0392b", "#ef8a80"),
    "running": ("#1565c0", "#90caf9"),
    "warning": ("#b45309", "#fbbf24"),
    "muted": ("#6b7280", "#9ca3af"),
}


@cache
def is_dark() -> bool:
    """Whether the application draws light text on a dark background."""
    if QGuiApplication.instance() is None:
        return False
    palette = QGuiApplication.palette()
    window = palette.color(QPalette.ColorRole.Window)
    text = palette.color(QPalette.ColorRole.WindowText)
    return window.lightness() < text.lightness()


def forget_theme() -> None:
    """The palette changed: compute colours and status marks again."""
    is_dark.cache_clear()
    icon.cache_clear()
    status_icon.cache_clear()


def status_color(kind: str) -> QColor:
    """``ok``, ``failed``, ``running``, ``warning`` or ``muted``, for this palette."""
    light, dark = _STATUS_COLORS.get(kind, _STATUS_COLORS["muted"])
    return QColor(dark if is_dark() else light)


@cache
def icon(name: str) -> QIcon:
    """``nerve``, ``nerve-paused`` or ``nerve-error`` (their ``-dark`` variants on dark)."""
    candidates = [f"{name}-dark.svg", f"{name}.svg"] if is_dark() else [f"{name}.svg"]
    for candidate in candidates:
        path = RESOURCES / candidate
        if path.exists():
            loaded = QIcon(str(path))
            if not loaded.isNull():
                return loaded
    from PySide6.QtCore import Qt  # (its enums take ~15 ms to build: not before the window shows)

    pixmap = QPixmap(64, 64)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setBrush(QColor(_FALLBACK_COLORS.get(name, "#2b6cb0")))
    painter.setPen(Qt.PenStyle.NoPen)
    painter.drawEllipse(2, 2, 60, 60)
    painter.end()
    return QIcon(pixmap)


@cache
def status_icon(kind: str) -> QIcon:
    """A small mark for a run's result: ``ok`` (a tick), ``failed`` (a cross),
    ``skipped`` (a dash), ``running`` (a dot), ``suspended`` (a pause sign) or
    ``never`` (a ring)."""
    result = QIcon()
    for size in (16, 24, 32):
        result.addPixmap(_status_pixmap(kind, size))
    return result


def _status_pixmap(kind: str, size: int) -> QPixmap:
    from PySide6.QtCore import Qt

    ratio = 1.0
    app = QGuiApplication.instance()
    if isinstance(app, QGuiApplication):
        ratio = app.devicePixelRatio()
    pixmap = QPixmap(round(size * ratio), round(size * ratio))
    pixmap.setDevicePixelRatio(ratio)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    unit = size / 16
    disc = QRectF(2 * unit, 2 * unit, 12 * unit, 12 * unit)
    color_kind = {"suspended": "warning", "never": "muted", "skipped": "muted"}.get(kind, kind)
    color = status_color(color_kind)
    # The glyph on the disc contrasts with the disc, whatever the theme.
    glyph = QColor("#ffffff") if color.lightness() < 150 else QColor("#1a1a1a")
    if kind == "never":
        painter.setPen(QPen(color, 1.5 * unit))
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawEllipse(disc.adjusted(unit, unit, -unit, -unit))
        painter.end()
        return pixmap
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(color)
    painter.drawEllipse(disc)
    pen = QPen(glyph, 1.8 * unit)
    pen.setCapStyle(Qt.PenCapStyle.RoundCap)
    pen.setJoinStyle(Qt.PenJoinStyle.RoundJoin)
    painter.setPen(pen)
    painter.setBrush(Qt.BrushStyle.NoBrush)
    if kind == "ok":
        path = QPainterPath(QPointF(5 * unit, 8.2 * unit))
        path.lineTo(7.2 * unit, 10.4 * unit)
        path.lineTo(11 * unit, 5.8 * unit)
        painter.drawPath(path)
    elif kind == "failed":
        painter.drawLine(QPointF(5.6 * unit, 5.6 * unit), QPointF(10.4 * unit, 10.4 * unit))
        painter.drawLine(QPointF(10.4 * unit, 5.6 * unit), QPointF(5.6 * unit, 10.4 * unit))
    elif kind == "skipped":
        painter.drawLine(QPointF(5.2 * unit, 8 * unit), QPointF(10.8 * unit, 8 * unit))
    elif kind == "suspended":
        painter.drawLine(QPointF(6.5 * unit, 5.5 * unit), QPointF(6.5 * unit, 10.5 * unit))
        painter.drawLine(QPointF(9.5 * unit, 5.5 * unit), QPointF(9.5 * unit, 10.5 * unit))
    else:  # running: a dot inside the disc
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(glyph)
        painter.drawEllipse(QPointF(8 * unit, 8 * unit), 2.2 * unit, 2.2 * unit)
    painter.end()
    return pixmap
