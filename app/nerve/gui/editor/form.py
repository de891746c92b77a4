"""The Form tab: a rule's own fields, its triggers, conditions and actions.

The rule-level fields are laid out by hand (General, When, If, Do, Runs);
every widget in them comes from the pack schema (:func:`nerve.packs.schema.rule_schema`)
through :func:`~nerve.gui.editor.fields.make_field`.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

from PySide6.QtCore import QRegularExpression, Signal
from PySide6.QtGui import QRegularExpressionValidator
from PySide6.QtWidgets import (
    QCheckBox,
    QFormLayout,
    QGroupBox,
    QLabel,
    QLayout,
    QVBoxLayout,
    QWidget,
)

from nerve.gui.editor.fields import (
    UNSET,
    Field,
    FormContext,
    TextField,
    TypedListField,
    make_field,
)
from nerve.packs.schema import RATE_KEYS, RULE_ID_PATTERN, rule_schema


class EnabledField(Field):
    """``enabled``: on unless written ``false``."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.check = QCheckBox("En&abled", self)
        self.check.setToolTip("A disabled rule stays loaded but never runs")
        self.check.toggled.connect(self._on_toggle)
        layout.addWidget(self.check)
        self.setFocusProxy(self.check)
        self._quiet = False

    def _on_toggle(self, _on: bool) -> None:
        if not self._quiet:
            self._edited()

    def _show(self, value: Any) -> None:
        self._quiet = True
        self.check.setChecked(value is not False)
        self._quiet = False

    def _read(self) -> Any:
        if self.check.isChecked():
            return UNSET if self._original is UNSET else True
        return False


class RuleForm(QWidget):
    """Every field of one rule; :meth:`value` is the rule as plain data."""

    changed = Signal()

    def __init__(self, ctx: FormContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        props = rule_schema(loose=False)["properties"]
        self.ctx = ctx
        self.fields_: dict[str, Field] = {}
        self.labels: dict[str, QLabel] = {}
        layout = QVBoxLayout(self)

        general = QGroupBox("General", self)
        form = QFormLayout(general)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self._add(form, "id", "&Id *", make_field(props["id"], ctx, name="id", required=True))
        id_field = self.fields_["id"]
        assert isinstance(id_field, TextField)
        id_edit = id_field.edit
        if hasattr(id_edit, "setValidator"):
            id_edit.setValidator(QRegularExpressionValidator(QRegularExpression(RULE_ID_PATTERN)))
        self._add(form, "name", "&Name", make_field(props["name"], ctx, name="name"))
        self._add(
            form,
            "description",
            "Descri&ption",
            make_field(props["description"], ctx, name="description"),
        )
        enabled = EnabledField(props["enabled"], ctx, name="enabled")
        self._add(form, "enabled", "", enabled)
        layout.addWidget(general)

        self._group(layout, "when", "&When: any of these triggers starts the rule", props, ctx)
        self._group(layout, "if", "If: all of these &conditions must hold", props, ctx)
        self._group(
            layout, "do", "&Do: these actions, in order", props, ctx.under(offer_placeholders=True)
        )

        runs = QGroupBox("Runs", self)
        form = QFormLayout(runs)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self._add(form, "mode", "&Mode", make_field(props["mode"], ctx, name="mode"))
        self._add(form, "max", "Ma&x runs", make_field(props["max"], ctx, name="max"))
        for key, label in zip(RATE_KEYS, ("De&bounce", "T&hrottle", "Coold&own"), strict=True):
            self._add(form, key, label, make_field(props[key], ctx, name=key))
        self.fields_["mode"].changed.connect(self._update_max)
        layout.addWidget(runs)
        layout.addStretch(1)
        self._original: dict[str, Any] = {}

    def _add(self, form: QFormLayout, key: str, label: str, field: Field) -> None:
        field.changed.connect(self.changed)
        self.fields_[key] = field
        if label:
            widget = QLabel(label, self)
            widget.setBuddy(field)
            widget.setToolTip(field.tooltip())
            form.addRow(widget, field)
            self.labels[key] = widget
        else:
            form.addRow(field)

    def _group(
        self, layout: QVBoxLayout, key: str, title: str, props: dict[str, Any], ctx: FormContext
    ) -> None:
        box = QGroupBox(title, self)
        inner = QVBoxLayout(box)
        field = make_field(props[key], ctx, name=key, required=key != "if", parent=box)
        inner.addWidget(field)
        field.changed.connect(self.changed)
        self.fields_[key] = field
        layout.addWidget(box)

    def field(self, key: str) -> Field:
        return self.fields_[key]

    def list_field(self, key: str) -> TypedListField:
        field = self.fields_[key]
        assert isinstance(field, TypedListField)
        return field

    def all_fields(self) -> Iterator[Field]:
        for field in self.fields_.values():
            yield from field.fields()

    def _update_max(self) -> None:
        mode = self.fields_["mode"].value()
        self.fields_["max"].setEnabled(mode in ("queued", "parallel"))

    def set_value(self, data: dict[str, Any]) -> None:
        self._original = dict(data)
        for key, field in self.fields_.items():
            field.set_value(data.get(key, UNSET))
        self._update_max()

    def value(self) -> dict[str, Any]:
        out = dict(self._original)
        for key, field in self.fields_.items():
            if not field.touched:
                continue
            value = field.value()
            if value is UNSET:
                out.pop(key, None)
            else:
                out[key] = value
        return out


def focus_chain(root: QWidget) -> list[QWidget]:
    """The widgets under ``root`` that take Tab focus, in layout (reading) order."""
    out: list[QWidget] = []

    def visit_widget(widget: QWidget) -> None:
        if not widget.isVisibleTo(root) and widget is not root:
            return
        proxy_free = widget.focusProxy() is None
        if (
            widget is not root
            and proxy_free
            and widget.focusPolicy().value & 0x1
            and widget.isEnabled()
        ):
            out.append(widget)
        layout = widget.layout()
        if layout is not None:
            visit_layout(layout)

    def visit_layout(layout: QLayout) -> None:
        for i in range(layout.count()):
            item = layout.itemAt(i)
            if item is None:
                continue
            widget = item.widget()
            sub = item.layout()
            if widget is not None:
                visit_widget(widget)
            elif sub is not None:
                visit_layout(sub)

    visit_widget(root)
    return out


def fix_tab_order(
    root: QWidget, before: QWidget | None = None, after: QWidget | None = None
) -> None:
    """Tab moves through ``root`` in reading order (rows added later included)."""
    chain = focus_chain(root)
    if before is not None:
        chain.insert(0, before)
    if after is not None:
        chain.append(after)
    for first, second in itertools.pairwise(chain):
        QWidget.setTabOrder(first, second)
