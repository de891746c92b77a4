"""The rule editor: forms generated from the type schemas, a YAML tab, a Test button.

``open_editor(core, pack_file, rule_id)`` shows it (``rule_id`` None: a new
rule); :class:`RuleEditor` emits ``saved(rule_id)`` after the pack was written
and Nerve reloaded it. ``close_all()`` closes every open editor, asking about
unsaved edits (Quit calls it).
"""

from nerve.gui.editor.window import RuleEditor, close_all, open_editor

__all__ = ["RuleEditor", "close_all", "open_editor"]
