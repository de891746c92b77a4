"""form, ask, choose and confirm in the engine: answers become {form.*}
placeholders (defined only after the action that asks), Escape and "No" stop
the run, a timeout gives the default, a pause closes the dialog, a password
answer is masked in the trace and never reaches the database."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import PACK_HEAD, Harness, wait_until
from nerve import masking, prompts
from nerve.packs.loader import load_pack
from nerve.prompts import Cancelled, Prompt
from nerve.storage import Store


class FakePrompter:
    """Answers each prompt with the next scripted reply: a values mapping,
    an exception to raise, or None to wait until cancelled."""

    def __init__(self, *replies: Any) -> None:
        self.replies = list(replies)
        self.prompts: list[Prompt] = []
        self.cancelled = 0

    async def ask(self, prompt: Prompt) -> dict[str, Any]:
        self.prompts.append(prompt)
        reply = self.replies.pop(0)
        if isinstance(reply, BaseException):
            raise reply
        if callable(reply):
            reply = reply(prompt)
        if reply is None:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                self.cancelled += 1
                raise
        return dict(reply)


def use(h: Harness, prompter: Any) -> Any:
    h.engine.prompter = prompter
    return prompter


def run_record(store: Store, rule: str = "r") -> dict[str, Any]:
    runs = wait_until(lambda: store.query_runs(rule_id=f"test.pack/{rule}"), 10, "a run record")
    return dict(runs[0])


def load_errors(yaml_rules: str) -> list[str]:
    pack = load_pack((PACK_HEAD + yaml_rules).encode(), filename="test.yaml")
    return [str(e) for e in pack.errors]


FORM_RULE = """
  - id: r
    when: {event: t.go}
    do:
      - form:
          title: Greeting
          fields:
            name: Your name
            note: {type: multiline, default: "none"}
            tone: {choices: [warm, cool], default: warm}
            pin: {type: password}
            age: {type: number, default: 3}
      - emit: {type: t.answered, data: {name: "{form.name}", note: "{form.note}",
               tone: "{form.tone}", age: "{form.age}", line: "{form.name}/{form.tone}"}}
"""


def test_form_answers_become_placeholders(stored: Harness, store: Store) -> None:
    fake = use(
        stored,
        FakePrompter(
            {"name": "Ada", "note": "two\nlines", "tone": "cool", "pin": "s3cret-pin", "age": "41"}
        ),
    )
    stored.load(FORM_RULE)
    stored.publish("t.go")
    (event,) = stored.recorder.wait("t.answered")
    assert event.data == {
        "name": "Ada",
        "note": "two\nlines",
        "tone": "cool",
        "age": 41,
        "line": "Ada/cool",
    }
    (prompt,) = fake.prompts
    assert prompt.kind == "form"
    assert prompt.title == "Greeting"
    assert [(f.name, f.kind, f.default) for f in prompt.fields] == [
        ("name", "text", None),
        ("note", "multiline", "none"),
        ("tone", "choice", "warm"),
        ("pin", "password", None),
        ("age", "number", 3),
    ]
    assert prompt.fields[0].label == "Your name"
    assert prompt.fields[2].choices == ("warm", "cool")
    run = run_record(store)
    assert run["status"] == "ok"
    answered = run["trace"]["actions"][0]["result"]["answered"]
    assert answered["pin"] == masking.MASK
    assert answered["name"] == "Ada"


def test_a_password_answer_is_never_stored(stored: Harness, store: Store, tmp_path: Path) -> None:
    secret = "hunter2-Zq9"
    use(stored, FakePrompter({"pw": secret}))
    stored.load(
        """
  - id: r
    when: {event: t.go}
    do:
      - ask: {prompt: Password?, name: pw, type: password}
      - log: "got {form.pw}"
      - set: {last: "{form.pw}"}
      - emit: {type: t.done, data: {pw: "{form.pw}"}}
"""
    )
    stored.publish("t.go")
    stored.recorder.wait("t.done")
    run = run_record(store)
    assert secret not in repr(run)
    assert run["trace"]["actions"][0]["result"]["answered"] == {"pw": masking.MASK}
    stored.engine.stop()
    store.close()
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path


def test_ask_number_and_text(harness: Harness) -> None:
    use(harness, FakePrompter({"answer": "2.5"}, {"n": "7"}))
    harness.load(
        """
  - id: r
    when: {event: t.go}
    do:
      - ask: How much?
      - ask: {prompt: "Count for {form.answer}", name: n, type: number, default: 1}
      - emit: {type: t.done, data: {a: "{form.answer}", n: "{form.n}"}}
"""
    )
    harness.publish("t.go")
    (event,) = harness.recorder.wait("t.done")
    assert event.data == {"a": "2.5", "n": 7}


def test_choose_gives_the_value_of_the_picked_item(harness: Harness) -> None:
    fake = use(harness, FakePrompter({"index": 1}))
    harness.load(
        """
  - id: r
    when: {event: t.go}
    do:
      - choose:
          name: sig
          items: [Short, {label: Formal, value: "Kind regards,\\nAda"}]
      - emit: {type: t.done, data: {sig: "{form.sig}"}}
"""
    )
    harness.publish("t.go")
    (event,) = harness.recorder.wait("t.done")
    assert event.data == {"sig": "Kind regards,\nAda"}
    assert fake.prompts[0].choices == ("Short", "Formal")


def test_escape_stops_the_run_and_does_nothing_more(stored: Harness, store: Store) -> None:
    use(stored, FakePrompter(Cancelled()))
    stored.load(FORM_RULE)
    stored.publish("t.go")
    run = run_record(store)
    assert run["status"] == "ok"  # stopped, not failed
    assert run["error"] == "form: cancelled by the user"
    assert [a["action"] for a in run["trace"]["actions"]] == ["form"]
    assert run["trace"]["actions"][0]["error"] == "form: cancelled by the user"
    assert not stored.recorder.of("t.answered")


@pytest.mark.parametrize(("answer", "goes_on"), [(True, True), (False, False)])
def test_confirm(stored: Harness, store: Store, answer: bool, goes_on: bool) -> None:
    use(stored, FakePrompter({"yes": answer}))
    stored.load(
        """
  - id: r
    when: {event: t.go}
    do:
      - confirm: "Delete {event.name}?"
      - emit: t.done
"""
    )
    stored.publish("t.go", name="x.txt")
    run = run_record(store)
    assert run["status"] == "ok"
    assert bool(stored.recorder.of("t.done")) is goes_on
    if not goes_on:
        assert "the answer was No" in run["trace"]["actions"][0]["error"]
        assert len(run["trace"]["actions"]) == 1


def test_a_timeout_gives_the_default(stored: Harness, store: Store) -> None:
    fake = use(stored, FakePrompter(None, None))
    stored.load(
        """
  - id: r
    when: {event: t.go}
    do:
      - choose: {items: [a, b, c], default: b, timeout: 200ms}
      - confirm: {prompt: Sure?, default: true, timeout: 100ms}
      - emit: {type: t.done, data: {c: "{form.choice}"}}
"""
    )
    stored.publish("t.go")
    (event,) = stored.recorder.wait("t.done")
    assert event.data == {"c": "b"}
    assert fake.cancelled == 2  # the dialogs were closed
    run = run_record(store)
    assert "timed out: default used" in run["trace"]["actions"][0]["result"]


def test_a_timeout_without_a_default_stops(stored: Harness, store: Store) -> None:
    fake = use(stored, FakePrompter(None))
    stored.load(
        """
  - id: r
    when: {event: t.go}
    do:
      - ask: {prompt: Name?, timeout: 150ms}
      - emit: t.done
"""
    )
    stored.publish("t.go")
    run = run_record(store)
    assert run["error"] == "ask: no answer within 0.15s and no default"
    assert not stored.recorder.of("t.done")
    assert fake.cancelled == 1


def test_pause_closes_an_open_dialog(harness: Harness) -> None:
    fake = use(harness, FakePrompter(None))
    harness.load(
        """
  - id: r
    when: {event: t.go}
    do:
      - confirm: Go?
      - emit: t.done
"""
    )
    harness.publish("t.go")
    wait_until(lambda: fake.prompts, 10, "the dialog to open")
    harness.engine.call(harness.engine.pause, "test")
    wait_until(lambda: fake.cancelled == 1, 10, "the dialog to close")
    last = wait_until(lambda: harness.summary("r")["last_run"], 10, "the run to end")
    assert last["status"] == "cancelled"


def test_no_display_fails_with_a_clear_message(
    stored: Harness, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    stored.engine.prompter = prompts.HelperPrompter()
    stored.load(
        """
  - id: r
    when: {event: t.go}
    do: [{ask: Name?}, {emit: t.done}]
"""
    )
    stored.publish("t.go")
    run = run_record(store)
    assert run["status"] == "failed"
    assert run["error"].startswith("ask: there is no desktop to show a dialog on")
    assert "internal" not in run["error"]


def test_dry_run_uses_the_defaults_and_shows_nothing(harness: Harness) -> None:
    fake = use(harness, FakePrompter())
    (rule,) = harness.load(
        """
  - id: r
    when: {event: t.go}
    do:
      - ask: {prompt: Name?, default: Bob}
      - choose: [x, y]
      - confirm: Really?
      - log: "{form.answer} {form.choice}"
"""
    )
    from nerve.events import Event

    event = Event(type="t.go", data={}, source="test")
    assert harness.engine.loop is not None
    ctx = asyncio.run_coroutine_threadsafe(
        harness.engine.dry_run(rule, event), harness.engine.loop
    ).result(10)
    assert ctx.status == "ok"
    assert fake.prompts == []
    actions = ctx.trace.actions
    assert actions[0]["result"] == {"would_ask": "form", "answers": {"answer": "Bob"}}
    assert actions[3]["result"] == "Bob x"


# ------------------------------------------------------------ placeholders


def test_a_placeholder_before_its_dialog_is_a_load_error() -> None:
    errors = load_errors(
        """
  - id: r
    when: {event: t.go}
    do:
      - log: "{form.name}"
      - ask: {prompt: Name?, name: name}
"""
    )
    assert len(errors) == 1
    assert "test.yaml:9:" in errors[0]
    assert "rules[0].do[0].log" in errors[0]
    assert "unknown placeholder {form.name}" in errors[0]


def test_a_dialog_in_one_branch_only_does_not_define_after_the_if() -> None:
    base = """
  - id: r
    when: {event: t.go}
    do:
      - if: {time: {after: "00:00"}}
        then: [{ask: {prompt: A?, name: a}}]
        else: [%s]
      - log: "{form.a}"
"""
    errors = load_errors(base % "{log: x}")
    assert len(errors) == 1
    assert "rules[0].do[1].log" in errors[0]
    assert not load_errors(base % "{ask: {prompt: B?, name: a}}")


def test_form_shorthand_errors_name_the_field() -> None:
    errors = load_errors(
        """
  - id: r
    when: {event: t.go}
    do:
      - form: {fields: {tone: {choices: [a, b], default: c}}}
      - choose: {items: [a], default: z}
      - type: {text: "{form.x}", form: {fields: {x: {type: number, default: abc}}}}
"""
    )
    assert len(errors) == 3
    assert "do[0].form.fields.tone.default" in errors[0]
    assert "do[1].choose.default" in errors[1]
    assert "do[2].type.form.fields.x.default" in errors[2]


_ACTIONS: dict[str, Callable[[str], str]] = {
    "form": lambda n: f"{{form: {{fields: {{{n}: X}}}}}}",
    "ask": lambda n: f"{{ask: {{prompt: Q, name: {n}}}}}",
    "choose": lambda n: f"{{choose: {{items: [a], name: {n}}}}}",
    "type": lambda n: f'{{type: {{text: "t", form: {{fields: {{{n}: X}}}}}}}}',
}


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.booleans(), st.sampled_from(sorted(_ACTIONS)), st.sampled_from("abc")),
        min_size=1,
        max_size=6,
    )
)
def test_placeholders_are_defined_exactly_after_their_dialog(
    steps: list[tuple[bool, str, str]],
) -> None:
    """Any order of dialogs and uses: a use is an error exactly when no
    earlier dialog defines the name."""
    items = []
    defined: set[str] = set()
    bad = []
    for i, (define, kind, name) in enumerate(steps):
        if define:
            items.append(_ACTIONS[kind](name))
            defined.add(name)
        else:
            items.append(f'{{log: "{{form.{name}}}"}}')
            if name not in defined:
                bad.append(i)
    errors = load_errors(
        "\n  - id: r\n    when: {event: t.go}\n    do:\n"
        + "".join(f"      - {item}\n" for item in items)
    )
    assert [int(e.split("do[")[1].split("]")[0]) for e in errors] == bad, errors


def test_the_dialogs_need_the_asks_user_capability() -> None:
    pack = load_pack(
        (
            PACK_HEAD
            + """
  - id: r
    when: {event: t.go}
    do: [{type: {text: "{form.a}", form: {fields: {a: A}}}}]
"""
        ).encode(),
        filename="test.yaml",
    )
    assert not pack.errors
    assert {"asks-user", "injects-input"} <= set(pack.rules[0].capabilities)
