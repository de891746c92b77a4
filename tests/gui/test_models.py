"""The Qt models on their own: Qt's model tester, the ring buffer, the trees."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QModelIndex, Qt
from pytestqt.modeltest import ModelTester

from nerve.bus import Bus
from nerve.events import Event
from nerve.gui.models import EventFilter, EventsModel, RulesModel, RunsModel, TraceModel


def events(count: int, type_: str = "x.tick", **data: Any) -> list[Event]:
    bus = Bus(capacity=count + 1)
    sub = bus.subscribe("*", wake=lambda: None)
    for i in range(count):
        bus.publish(type_, {"n": i, **data}, source="test")
    return sub.drain()


def test_events_model_keeps_the_newest_rows(qtmodeltester: ModelTester) -> None:
    model = EventsModel(capacity=100)
    qtmodeltester.check(model)
    model.append_events(events(30))
    model.append_events(events(90, "y.tock"))
    qtmodeltester.check(model)
    assert model.rowCount() == 100
    # 20 of the first batch were pushed out; the rest follow in order.
    assert [e.data["n"] for e in model.events()[:10]] == list(range(20, 30))
    assert model.events()[-1].type == "y.tock"
    assert model.index(99, EventsModel.TYPE).data() == "y.tock"
    assert model.index(99, EventsModel.DATA).data() == "n=89"
    assert model.headerData(1, Qt.Orientation.Horizontal) == "Type"
    # A batch larger than the buffer keeps its own newest rows.
    model.append_events(events(250))
    assert [e.data["n"] for e in (model.events()[0], model.events()[-1])] == [150, 249]
    assert model.received == 30 + 90 + 250
    model.clear()
    assert model.rowCount() == 0


def test_event_filter_by_type_source_and_text(qtmodeltester: ModelTester) -> None:
    model = EventsModel(capacity=1000)
    model.append_events(events(5, "file.created", path="/tmp/a.png"))
    model.append_events(events(3, "hotkey", combo="ctrl+alt+t"))
    proxy = EventFilter()
    proxy.setSourceModel(model)
    qtmodeltester.check(proxy)
    assert proxy.rowCount() == 8
    proxy.set_filters(type_="file.*")
    assert proxy.rowCount() == 5
    proxy.set_filters(type_="hot")  # a substring works too
    assert proxy.rowCount() == 3
    proxy.set_filters(type_="", text="CTRL+ALT")
    assert proxy.rowCount() == 3
    proxy.set_filters(text="a.png", source="tes")
    assert proxy.rowCount() == 5
    proxy.set_filters(source="keyboard")
    assert proxy.rowCount() == 0
    proxy.set_filters(type_="", source="", text="")
    assert proxy.rowCount() == 8
    qtmodeltester.check(proxy)


RUN = {
    "id": "abc123def4567890",
    "rule_id": "p/r",
    "pack_id": "p",
    "event_id": 7,
    "started": 1_700_000_000.0,
    "ended": 1_700_000_000.25,
    "status": "failed",
    "error": "run: exit status 1",
    "trace": {
        "event": {"id": 7, "type": "x.go", "source": "cli", "data": {"who": "ann"}},
        "trigger": None,
        "conditions": [{"path": "if[0]", "condition": "event", "ok": True, "detail": None}],
        "actions": [
            {"path": "do[0]", "action": "log", "result": "hello", "ms": 0.2},
            {"path": "do[1]", "action": "run", "error": "exit status 1", "ms": 12.5},
        ],
    },
}


def test_runs_model(qtmodeltester: ModelTester) -> None:
    model = RunsModel()
    qtmodeltester.check(model)
    assert model.set_runs([RUN, {**RUN, "id": "older", "status": "ok", "error": None}])
    assert not model.set_runs([RUN, {**RUN, "id": "older", "status": "ok", "error": None}])
    qtmodeltester.check(model)
    assert model.index(0, RunsModel.STATUS).data() == "failed"
    assert model.index(0, RunsModel.DURATION).data() == "250 ms"
    assert model.index(0, RunsModel.ERROR).data() == "run: exit status 1"
    assert model.row_of("older") == 1


def test_trace_model_shows_conditions_and_actions(qtmodeltester: ModelTester) -> None:
    model = TraceModel()
    model.show_run(RUN)
    qtmodeltester.check(model)
    tops = [model.index(r, 0).data() for r in range(model.rowCount())]
    assert tops == ["Run abc123def456 of p/r", "Event x.go", "Conditions (1)", "Actions (2)"]
    conditions = model.index(2, 0)
    assert model.index(0, 1, conditions).data() == "holds"
    actions = model.index(3, 0)
    assert model.index(1, 0, actions).data() == "run  (do[1])"
    assert model.index(1, 1, actions).data() == "error: exit status 1"
    assert model.index(1, 2, actions).data() == "12.5 ms"
    event = model.index(1, 0)
    assert (model.index(0, 0, event).data(), model.index(0, 1, event).data()) == ("who", "ann")
    model.show_run(None)
    assert model.rowCount() == 0


def summaries() -> list[dict[str, Any]]:
    def rule(key: str, enabled: bool = True, **more: Any) -> dict[str, Any]:
        return {"key": key, "name": key.split("/")[1].title(), "enabled": enabled,
                "suspended": None, "last_run": None, "triggers": ["event"], **more}  # fmt: skip

    return [
        rule("a/one"),
        rule("a/two", enabled=False),
        rule("b/three", last_run={"status": "failed", "started": 1.0, "error": "boom"}),
    ]


def test_rules_model_tree_and_switches(qtmodeltester: ModelTester) -> None:
    toggled: list[tuple[str, bool]] = []
    model = RulesModel(on_toggle=lambda key, on: toggled.append((key, on)))
    qtmodeltester.check(model)
    model.set_rules(summaries(), {"a": "Pack A"})
    qtmodeltester.check(model)
    assert model.rowCount() == 2
    pack_a = model.index(0, 0)
    assert pack_a.data() == "Pack A (a)"
    assert model.index(0, RulesModel.ENABLED).data() == "1 of 2 on"
    two = model.index(1, RulesModel.ENABLED, pack_a)
    assert two.data(Qt.ItemDataRole.CheckStateRole) == Qt.CheckState.Unchecked
    assert two.flags() & Qt.ItemFlag.ItemIsUserCheckable
    assert not (model.index(0, RulesModel.ENABLED).flags() & Qt.ItemFlag.ItemIsUserCheckable)
    assert model.setData(two, Qt.CheckState.Checked.value, Qt.ItemDataRole.CheckStateRole)
    assert toggled == [("a/two", True)]
    assert model.index(0, RulesModel.ENABLED).data() == "2 of 2 on"
    three = model.index_of("b/three", RulesModel.LAST_RUN)
    assert three.data().startswith("failed at ")
    assert model.parent(three) == model.index(1, 0)
    assert model.index_of("nope/x") == QModelIndex()
    # Same shape: updated in place (no reset), state follows the new summaries.
    resets: list[int] = []
    model.modelReset.connect(lambda: resets.append(1))
    fresh = summaries()
    fresh[0]["enabled"] = False
    model.set_rules(fresh)
    assert not resets
    assert (
        model.index_of("a/one", 1).data(Qt.ItemDataRole.CheckStateRole) == Qt.CheckState.Unchecked
    )
    model.set_rules(fresh[:2])
    assert resets == [1]
    qtmodeltester.check(model)
