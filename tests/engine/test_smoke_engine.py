from __future__ import annotations

from conftest import Harness


def test_event_rule_emits(harness: Harness) -> None:
    harness.load(
        """
  - id: echo
    when: {event: {type: demo.ping, data: {who: world}}}
    do:
      - emit: {type: demo.pong, data: {who: "{event.who}", n: "{event.n}"}}
"""
    )
    harness.publish("demo.ping", who="someone", n=1)
    harness.publish("demo.ping", who="world", n=2)
    (pong,) = harness.recorder.wait("demo.pong")
    assert pong.data == {"who": "world", "n": 2}
    assert pong.depth == 1
    assert pong.cause is not None
