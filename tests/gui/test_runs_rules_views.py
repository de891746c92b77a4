"""Runs and Rules tabs over a real engine and store."""

from __future__ import annotations

from PySide6.QtCore import Qt
from pytestqt.modeltest import ModelTester
from pytestqt.qtbot import QtBot

from gui.support import Running
from nerve.gui.models import RulesModel
from nerve.gui.views import RulesView, RunsView


def test_runs_view_shows_a_real_run_and_its_trace(
    qtbot: QtBot, running: Running, qtmodeltester: ModelTester
) -> None:
    view = RunsView(running.core)
    qtbot.addWidget(view)
    view.show()
    assert view.model.rowCount() == 0
    assert view.empty.isVisible()

    running.bus.publish("x.go", {"who": "ann"}, source="test")
    running.bus.publish("x.fail", {}, source="test")
    qtbot.waitUntil(lambda: len(running.store.query_runs()) == 2, timeout=10_000)
    view.refresh()  # the 2 s poll would do it too
    assert view.model.rowCount() == 2
    assert not view.empty.isVisible()
    by_rule = {view.model.run_at(r)["rule_id"]: r for r in range(2)}

    view.table.selectRow(by_rule["gui.test/greet"])
    trace = view.trace
    qtmodeltester.check(trace)
    tops = [trace.index(r, 0).data() for r in range(trace.rowCount())]
    assert tops[1:] == ["Event x.go", "Conditions (1)", "Actions (2)"]
    assert trace.index(0, 1).data() == "ok"
    conditions, actions = trace.index(2, 0), trace.index(3, 0)
    assert trace.index(0, 0, conditions).data().startswith("event")
    assert trace.index(0, 1, conditions).data() == 'holds: event has {"who": "ann"}'
    assert trace.index(0, 0, actions).data().startswith("log")
    assert trace.index(0, 2, actions).data().endswith(" ms")
    assert trace.index(1, 0, actions).data().startswith("set")

    view.table.selectRow(by_rule["gui.test/broken"])
    assert trace.index(0, 1).data() == "failed"
    actions = trace.index(trace.rowCount() - 1, 0)
    assert trace.index(0, 1, actions).data().startswith("error: ")
    # A refresh with nothing new keeps the selection and the trace.
    view.refresh()
    assert view.selected_run() is not None
    assert view.selected_run()["rule_id"] == "gui.test/broken"  # type: ignore[index]


def test_runs_view_follows_the_engine_only_while_shown(qtbot: QtBot, running: Running) -> None:
    view = RunsView(running.core)
    qtbot.addWidget(view)
    assert view._watch is None
    view.show()
    assert view._watch is not None
    assert view._watch.active
    assert view.model.rowCount() == 0
    # A run ends: the engine says so, and the view refreshes without polling.
    running.bus.publish("x.go", {"who": "ann"}, source="test")
    qtbot.waitUntil(lambda: view.model.rowCount() == 1, timeout=10_000)
    view.hide()
    assert not view._watch.active
    running.bus.publish("x.go", {"who": "bob"}, source="test")
    qtbot.waitUntil(lambda: len(running.store.query_runs()) == 2, timeout=10_000)
    qtbot.wait(400)  # (longer than CHANGE_MS: a hidden view does not refresh)
    assert view.model.rowCount() == 1


def test_rules_view_switch_changes_the_engine(qtbot: QtBot, running: Running) -> None:
    view = RulesView(running.core)
    qtbot.addWidget(view)
    view.show()
    model = view.model
    assert model.rowCount() == 1
    assert model.index(0, 0).data() == "GUI tests (gui.test)"
    switch = view.index_of("gui.test/greet", RulesModel.ENABLED)
    assert switch.data(Qt.ItemDataRole.CheckStateRole) == Qt.CheckState.Checked

    assert view.proxy.setData(switch, Qt.CheckState.Unchecked.value, Qt.ItemDataRole.CheckStateRole)
    assert running.summary("greet")["enabled"] is False
    qtbot.waitUntil(lambda: model.index(0, RulesModel.ENABLED).data() == "1 of 2 on", timeout=3000)
    running.bus.publish("x.go", {"who": "ann"}, source="test")  # an off rule does not run

    switch = view.index_of("gui.test/greet", RulesModel.ENABLED)
    assert view.proxy.setData(switch, Qt.CheckState.Checked.value, Qt.ItemDataRole.CheckStateRole)
    assert running.summary("greet")["enabled"] is True
    assert not view.errors

    # Last run at a glance: fire the broken rule and refresh.
    running.bus.publish("x.fail", {}, source="test")
    qtbot.waitUntil(lambda: running.summary("broken")["last_run"] is not None, timeout=10_000)
    view.refresh()
    last = view.index_of("gui.test/broken", RulesModel.LAST_RUN)
    assert last.data().startswith("failed at ")
    assert running.store.query_runs(rule_id="gui.test/greet") == []


def test_rules_view_search(qtbot: QtBot, running: Running) -> None:
    view = RulesView(running.core)
    qtbot.addWidget(view)
    view.show()
    view.search.setText("fails")
    pack = view.proxy.index(0, 0)
    assert view.proxy.rowCount(pack) == 1
    assert view.proxy.index(0, 0, pack).data() == "Always fails"
    view.search.setText("nothing like this")
    assert view.proxy.rowCount() == 0
    view.search.clear()
    assert view.proxy.rowCount(view.proxy.index(0, 0)) == 2


def test_rules_view_counts_skips_and_answers_why_not(qtbot: QtBot, running: Running) -> None:
    view = RulesView(running.core)
    qtbot.addWidget(view)
    view.show()
    running.bus.publish("x.go", {"who": "bob"}, source="test")  # its condition wants ann
    running.bus.publish("x.go", {"who": "ann"}, source="test")
    qtbot.waitUntil(lambda: running.summary("greet")["ran"] == 1, timeout=10_000)
    qtbot.waitUntil(lambda: running.summary("greet")["skips"] == {"condition": 1}, timeout=10_000)
    view.refresh()
    runs = view.index_of("gui.test/greet", RulesModel.RUNS)
    assert runs.data() == "1 ran, 1 skipped"
    tip = runs.data(Qt.ItemDataRole.ToolTipRole)
    assert "skipped 1: its conditions did not hold" in tip
    assert view.index_of("gui.test/broken", RulesModel.RUNS).data() == "0 ran"

    assert not view.why_button.isEnabled()  # no rule selected
    assert view.select("gui.test/greet")
    assert view.why_button.isEnabled()
    qtbot.mouseClick(view.why_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(view.why_box.isVisible, timeout=5_000)
    text = view.why_text
    assert text.startswith("gui.test/greet (Greet on x.go): active")
    assert "Since Nerve started: ran 1, skipped 1 (condition 1)" in text
    miss = next(line for line in text.splitlines() if ": condition: " in line)
    assert "x.go" in miss
    assert '"who": "bob"' in miss
    view.why_box.close()
