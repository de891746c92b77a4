"""The YAML tab's text editor: line numbers, and errors marked at their lines."""

from __future__ import annotations

from PySide6.QtCore import QEvent, QRect, QSize, Qt
from PySide6.QtGui import (
    QColor,
    QFontDatabase,
    QHelpEvent,
    QKeyEvent,
    QPainter,
    QPaintEvent,
    QResizeEvent,
    QTextCharFormat,
    QTextCursor,
    QTextFormat,
)
from PySide6.QtWidgets import QPlainTextEdit, QTextEdit, QToolTip, QWidget

from nerve.gui import icons
from nerve.gui.editor.checking import Problem


class _Gutter(QWidget):
    def __init__(self, editor: YamlEdit) -> None:
        super().__init__(editor)
        self.editor = editor

    def sizeHint(self) -> QSize:
        return QSize(self.editor.gutter_width(), 0)

    def paintEvent(self, event: QPaintEvent) -> None:
        self.editor.paint_gutter(event)

    def event(self, event: QEvent) -> bool:
        if event.type() == QEvent.Type.ToolTip:
            assert isinstance(event, QHelpEvent)
            cursor = self.editor.cursorForPosition(event.pos())
            self.editor.show_problem_tip(cursor.blockNumber() + 1, event.globalPos())
            return True
        return super().event(event)


class YamlEdit(QPlainTextEdit):
    """Plain text with line numbers; :meth:`set_problems` marks lines with errors."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.setTabChangesFocus(False)
        self.setAccessibleName("Rule YAML")
        self.gutter = _Gutter(self)
        self.problems: list[Problem] = []
        self.blockCountChanged.connect(self._update_width)
        self.updateRequest.connect(self._update_gutter)
        self._update_width()

    # -- keys: YAML is indented with spaces ----------------------------------------

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() == Qt.Key.Key_Tab and not event.modifiers():
            self.insertPlainText("  ")
            return
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and not event.modifiers():
            # Keep the indentation of the line (and indent after "key:" or "- ").
            line = self.textCursor().block().text()
            indent = line[: len(line) - len(line.lstrip(" "))]
            before = line[: self.textCursor().positionInBlock()].rstrip()
            if before.endswith(":"):
                indent += "  "
            super().keyPressEvent(event)
            self.insertPlainText(indent)
            return
        super().keyPressEvent(event)

    # -- the gutter ----------------------------------------------------------------

    def gutter_width(self) -> int:
        digits = max(2, len(str(max(1, self.blockCount()))))
        return 14 + self.fontMetrics().horizontalAdvance("9") * digits

    def _update_width(self, *_args: object) -> None:
        self.setViewportMargins(self.gutter_width(), 0, 0, 0)

    def _update_gutter(self, rect: QRect, dy: int) -> None:
        if dy:
            self.gutter.scroll(0, dy)
        else:
            self.gutter.update(0, rect.y(), self.gutter.width(), rect.height())
        if rect.contains(self.viewport().rect()):
            self._update_width()

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        cr = self.contentsRect()
        self.gutter.setGeometry(QRect(cr.left(), cr.top(), self.gutter_width(), cr.height()))

    def paint_gutter(self, event: QPaintEvent) -> None:
        painter = QPainter(self.gutter)
        palette = self.palette()
        painter.fillRect(event.rect(), palette.alternateBase())
        bad = self.error_lines()
        error_color = icons.status_color("failed")
        block = self.firstVisibleBlock()
        number = block.blockNumber()
        top = round(self.blockBoundingGeometry(block).translated(self.contentOffset()).top())
        bottom = top + round(self.blockBoundingRect(block).height())
        height = self.fontMetrics().height()
        while block.isValid() and top <= event.rect().bottom():
            if block.isVisible() and bottom >= event.rect().top():
                line = number + 1
                if line in bad:
                    painter.fillRect(0, top, 4, height, error_color)
                    painter.setPen(error_color)
                else:
                    painter.setPen(palette.placeholderText().color())
                painter.drawText(
                    0, top, self.gutter.width() - 6, height,
                    Qt.AlignmentFlag.AlignRight, str(line),
                )  # fmt: skip
            block = block.next()
            top = bottom
            bottom = top + round(self.blockBoundingRect(block).height())
            number += 1
        painter.end()

    # -- problems ------------------------------------------------------------------

    def set_problems(self, problems: list[Problem]) -> None:
        """Mark ``problems`` in the text (their lines and columns) and the gutter."""
        self.problems = list(problems)
        selections: list[QTextEdit.ExtraSelection] = []
        color = QColor(icons.status_color("failed"))
        background = QColor(color)
        background.setAlpha(40)
        doc = self.document()
        for problem in self.problems:
            block = doc.findBlockByNumber(max(0, problem.line - 1))
            if not block.isValid():
                block = doc.lastBlock()
            line = QTextEdit.ExtraSelection()
            line.format.setBackground(background)
            line.format.setProperty(QTextFormat.Property.FullWidthSelection, True)
            line.cursor = QTextCursor(block)
            selections.append(line)
            mark = QTextEdit.ExtraSelection()
            mark.format.setUnderlineStyle(QTextCharFormat.UnderlineStyle.WaveUnderline)
            mark.format.setUnderlineColor(color)
            cursor = QTextCursor(block)
            column = min(max(0, problem.column - 1), max(0, block.length() - 1))
            cursor.setPosition(block.position() + column)
            cursor.movePosition(
                QTextCursor.MoveOperation.EndOfBlock, QTextCursor.MoveMode.KeepAnchor
            )
            if not cursor.hasSelection():
                cursor.movePosition(
                    QTextCursor.MoveOperation.StartOfBlock, QTextCursor.MoveMode.KeepAnchor
                )
            mark.cursor = cursor
            selections.append(mark)
        self.setExtraSelections(selections)
        self.gutter.update()

    def error_lines(self) -> set[int]:
        return {p.line for p in self.problems}

    def problems_at(self, line: int) -> list[Problem]:
        return [p for p in self.problems if p.line == line]

    def show_problem_tip(self, line: int, where: object) -> None:
        found = self.problems_at(line)
        if found:
            QToolTip.showText(where, "\n".join(str(p) for p in found), self)  # type: ignore[arg-type]
        else:
            QToolTip.hideText()

    def event(self, event: QEvent) -> bool:
        if event.type() == QEvent.Type.ToolTip:
            assert isinstance(event, QHelpEvent)
            cursor = self.cursorForPosition(self.viewport().mapFromGlobal(event.globalPos()))
            self.show_problem_tip(cursor.blockNumber() + 1, event.globalPos())
            return True
        return super().event(event)

    def go_to(self, line: int, column: int = 1) -> None:
        """Put the cursor at ``line``:``column`` and show it."""
        block = self.document().findBlockByNumber(max(0, line - 1))
        cursor = QTextCursor(block)
        cursor.setPosition(block.position() + min(max(0, column - 1), max(0, block.length() - 1)))
        self.setTextCursor(cursor)
        self.centerCursor()
        self.setFocus()

    def replace_text(self, text: str) -> None:
        """Show ``text`` keeping the cursor's line and column where it can."""
        if text == self.toPlainText():
            return
        cursor = self.textCursor()
        line, column = cursor.blockNumber(), cursor.positionInBlock()
        scroll = self.verticalScrollBar().value()
        self.setPlainText(text)
        block = self.document().findBlockByNumber(min(line, self.blockCount() - 1))
        cursor = QTextCursor(block)
        cursor.setPosition(block.position() + min(column, max(0, block.length() - 1)))
        self.setTextCursor(cursor)
        self.verticalScrollBar().setValue(scroll)
