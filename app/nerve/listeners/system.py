"""Power and network: the ``power.ac``, ``power.battery``, ``power.low``,
``network.up`` and ``network.down`` triggers and the two listeners behind them.

Both listeners read the state with psutil every few seconds, only while a
rule needs them, and publish an event on each change:

- ``power`` (every 5 s): ``psutil.sensors_battery()``. ``power.ac`` when the
  charger is plugged in, ``power.battery`` when it is pulled out,
  ``power.low`` when the charge drops below a rule's threshold while not
  plugged in (once per crossing: it re-arms when the charge is back at or
  above the threshold, or the charger is plugged in). A machine without a
  battery makes the listener unavailable ("no battery found"); the rest of
  Nerve runs on.
- ``network`` (every 2 s): ``psutil.net_if_stats()``. ``network.up`` when an
  interface starts running (up, with a carrier), ``network.down`` when it
  stops or disappears.

Nothing is published for the state found at start: these are changes.

The readers are a seam: each listener takes ``read=`` (a function returning
what psutil returns: an ``sbattery`` or None, a mapping of name to
``snicstats``) and ``interval=``; the module's ``read_battery``,
``read_interfaces``, ``POWER_INTERVAL_S`` and ``NETWORK_INTERVAL_S`` are the
defaults. Tests feed psutil's own named tuples through it.
"""

from __future__ import annotations

import logging
import threading
from abc import abstractmethod
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from typing import Any

from nerve import matching
from nerve.engine.registry import CompileContext, ConfigError, Matcher, Trigger, triggers
from nerve.events import Event
from nerve.listeners.base import Listener, ListenerUnavailable, Need, listeners

log = logging.getLogger(__name__)

POWER_INTERVAL_S = 5.0
NETWORK_INTERVAL_S = 2.0
#: ``power.low`` without a threshold: below this percentage.
DEFAULT_LOW_PERCENT = 20
JOIN_TIMEOUT_S = 5.0

POWER_FIELDS = frozenset({"percent", "plugged", "secsleft"})
POWER_LOW_FIELDS = POWER_FIELDS | {"below"}
NETWORK_FIELDS = frozenset({"interface"})


def read_battery() -> Any:
    """psutil's battery reading: an ``sbattery(percent, secsleft, power_plugged)``
    or None when the machine has no battery."""
    try:
        import psutil
    except ImportError:
        raise ListenerUnavailable("power triggers need psutil: pip install psutil") from None
    sensors = getattr(psutil, "sensors_battery", None)  # missing on some platforms
    return sensors() if sensors is not None else None


def read_interfaces() -> Mapping[str, Any]:
    """psutil's ``net_if_stats()``: interface name to ``snicstats(isup, ...)``."""
    try:
        import psutil
    except ImportError:
        raise ListenerUnavailable("network triggers need psutil: pip install psutil") from None
    stats: Mapping[str, Any] = psutil.net_if_stats()
    return stats


class PolledListener(Listener):
    """A listener that reads a state every ``interval`` seconds on its own
    thread and publishes what changed."""

    default_interval = 5.0

    def __init__(
        self,
        bus: Any,
        on_failure: Any,
        *,
        read: Callable[[], Any] | None = None,
        interval: float | None = None,
    ) -> None:
        super().__init__(bus, on_failure)
        self.read = read if read is not None else self.default_reader()
        self.interval = interval if interval is not None else self.default_interval
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    @abstractmethod
    def default_reader(self) -> Callable[[], Any]: ...

    @abstractmethod
    def configure(self, needs: Sequence[Need]) -> None:
        """Take the needs (thresholds); called before the first reading too."""

    @abstractmethod
    def first(self, reading: Any) -> None:
        """The state at start: remember it (raise ListenerUnavailable if there is none)."""

    @abstractmethod
    def update(self, reading: Any) -> None:
        """A later reading: publish what changed."""

    def start(self, needs: Sequence[Need]) -> None:
        self.configure(needs)
        self.first(self.read())
        self._stopping.clear()
        self._thread = threading.Thread(target=self._loop, name=f"{self.id}-poll", daemon=True)
        self._thread.start()

    def reconfigure(self, needs: Sequence[Need]) -> None:
        self.configure(needs)  # the thread reads the new needs on its next round

    def stop(self) -> None:
        self._stopping.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(JOIN_TIMEOUT_S)

    def _loop(self) -> None:
        try:
            while not self._stopping.wait(self.interval):
                self.update(self.read())
        except Exception as exc:
            if not self._stopping.is_set():
                log.exception("the %s listener stopped", self.id)
                self.failed(exc)


# ---------------------------------------------------------------------------
# Power


def _seconds_left(value: Any) -> int | None:
    # psutil says POWER_TIME_UNLIMITED (-2) or POWER_TIME_UNKNOWN (-1), as enums.
    try:
        seconds = int(value)
    except (TypeError, ValueError):
        return None
    return seconds if seconds >= 0 else None


@listeners.register
class PowerListener(PolledListener):
    """Battery and charger changes (see the module docstring)."""

    id = "power"
    description = "Charger plugged in or out, battery running low (psutil, polled)"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.default_interval = POWER_INTERVAL_S
        super().__init__(*args, **kwargs)
        self._thresholds: tuple[float, ...] = ()
        self._armed: dict[float, bool] = {}
        self._last: Any = None

    def default_reader(self) -> Callable[[], Any]:
        return read_battery

    def configure(self, needs: Sequence[Need]) -> None:
        thresholds = sorted(
            {float(n[1]) for n in needs if isinstance(n, tuple) and len(n) == 2 and n[0] == "low"}
        )
        last = self._last
        # A new threshold starts armed only if the charge is not already below it.
        self._armed = {
            t: self._armed.get(t, last is None or _percent(last) >= t) for t in thresholds
        }
        self._thresholds = tuple(thresholds)

    def first(self, reading: Any) -> None:
        if reading is None:
            raise ListenerUnavailable("no battery found")
        self._last = reading
        self._armed = {t: _percent(reading) >= t for t in self._thresholds}

    def update(self, reading: Any) -> None:
        if reading is None:
            return  # the battery could not be read this time; keep the last state
        previous, self._last = self._last, reading
        percent = _percent(reading)
        plugged = reading.power_plugged
        data: dict[str, object] = {
            "percent": percent,
            "plugged": plugged,
            "secsleft": _seconds_left(reading.secsleft),
        }
        if plugged is not None and previous is not None:
            was = previous.power_plugged
            if was is not None and bool(plugged) != bool(was):
                self.publish("power.ac" if plugged else "power.battery", data)
        armed = self._armed
        for threshold in self._thresholds:
            if percent >= threshold or plugged:
                armed[threshold] = True
            elif armed.get(threshold, True):
                armed[threshold] = False
                self.publish("power.low", {**data, "below": _number(threshold)})

    def detail(self) -> str:
        last = self._last
        if last is None:
            return ""
        state = "on AC" if last.power_plugged else "on battery"
        return f"battery {_percent(last):g}% {state}; read every {self.interval:g}s"


def _percent(reading: Any) -> float:
    return round(float(reading.percent), 1)


def _number(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


_NO_OPTIONS: dict[str, Any] = {
    "anyOf": [
        {"type": "null"},
        {"type": "object", "properties": {}, "additionalProperties": False},
    ]
}


class _PowerTrigger(Trigger):
    event_type = ""
    listeners = frozenset({"power"})

    @classmethod
    def compile(cls, options: Any, ctx: CompileContext) -> _PowerTrigger:
        return cls()

    def matchers(self) -> list[Matcher]:
        return [Matcher(self.event_type)]

    def event_fields(self) -> frozenset[str] | None:
        return POWER_FIELDS

    def event_hint(self) -> str:
        return f"{self.event_type} events"


@triggers.register
class PowerAcTrigger(_PowerTrigger):
    """The charger was plugged in."""

    key = "power.ac"
    event_type = "power.ac"
    description = "The charger was plugged in (power.ac: {}). Event: percent, plugged, secsleft"
    schema = _NO_OPTIONS


@triggers.register
class PowerBatteryTrigger(_PowerTrigger):
    """The charger was unplugged: running on battery."""

    key = "power.battery"
    event_type = "power.battery"
    description = (
        "The charger was unplugged: running on battery (power.battery: {}). "
        "Event: percent, plugged, secsleft"
    )
    schema = _NO_OPTIONS


@triggers.register
class PowerLowTrigger(Trigger):
    """The battery charge dropped below a percentage while not charging."""

    key = "power.low"
    description = (
        f"The battery dropped below a percentage while unplugged (power.low: {{below: 15}}; "
        f"default {DEFAULT_LOW_PERCENT}). Event: percent, plugged, secsleft, below"
    )
    listeners = frozenset({"power"})
    _BELOW = {
        "type": "number",
        "exclusiveMinimum": 0,
        "maximum": 100,
        "description": "Fire when the charge drops below this percentage",
    }
    schema = {
        "anyOf": [
            {"type": "null"},
            _BELOW,
            {"type": "object", "properties": {"below": _BELOW}, "additionalProperties": False},
        ]
    }

    def __init__(self, below: int | float) -> None:
        self.below = below

    @classmethod
    def compile(cls, options: Any, ctx: CompileContext) -> PowerLowTrigger:
        if options is None:
            options = {}
        if not isinstance(options, dict):
            options = {"below": options}
        below = options.get("below", DEFAULT_LOW_PERCENT)
        if isinstance(below, bool):
            raise ConfigError("'below' is a percentage (1 to 100)", ("below",))
        return cls(_number(below))

    def matchers(self) -> list[Matcher]:
        # Indexed by threshold: each rule sees the crossing of its own.
        return [Matcher("power.low", ("below", self.below))]

    def needs(self) -> Iterator[tuple[str, Hashable]]:
        yield "power", ("low", self.below)

    def event_fields(self) -> frozenset[str] | None:
        return POWER_LOW_FIELDS

    def event_hint(self) -> str:
        return "power.low events"

    def describe(self) -> str:
        return f"battery below {self.below}%"


# ---------------------------------------------------------------------------
# Network


@listeners.register
class NetworkListener(PolledListener):
    """Network interfaces coming up and going down (see the module docstring)."""

    id = "network"
    description = "Network interfaces up and down (psutil, polled)"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.default_interval = NETWORK_INTERVAL_S
        super().__init__(*args, **kwargs)
        self._up: dict[str, bool] = {}

    def default_reader(self) -> Callable[[], Any]:
        return read_interfaces

    def configure(self, needs: Sequence[Need]) -> None:
        pass  # every change is published; rules pick their interfaces

    def first(self, reading: Any) -> None:
        self._up = {name: bool(s.isup) for name, s in reading.items()}

    def update(self, reading: Any) -> None:
        now = {name: bool(s.isup) for name, s in reading.items()}
        previous, self._up = self._up, now
        for name, up in now.items():
            if up and not previous.get(name, False):
                self.publish("network.up", {"interface": name})
        for name, was_up in previous.items():
            if was_up and not now.get(name, False):
                self.publish("network.down", {"interface": name})

    def detail(self) -> str:
        up = sorted(n for n, u in self._up.items() if u)
        return f"up: {', '.join(up) or 'none'}; read every {self.interval:g}s"


class _NetworkTrigger(Trigger):
    event_type = ""
    listeners = frozenset({"network"})
    schema = {
        "anyOf": [
            {"type": "null", "description": "Any interface"},
            {"type": "string", "description": "An interface name (eth0) or glob (wl*)"},
            {
                "type": "object",
                "properties": {
                    "interface": {
                        **matching.SPEC_SCHEMA,
                        "description": "Interface name (eth0) or glob (wl*); any when left out",
                    }
                },
                "additionalProperties": False,
            },
        ]
    }

    def __init__(self, interface: Any) -> None:
        self.interface = interface
        exact = matching.is_exact(interface)
        self.index = ("interface", interface) if exact else None
        check = matching.compile_spec(interface) if interface is not None and not exact else None
        self.predicate: Callable[[Event], bool] | None = (
            (lambda e: check(e.get("interface", matching.MISSING))) if check else None
        )

    @classmethod
    def compile(cls, options: Any, ctx: CompileContext) -> _NetworkTrigger:
        if isinstance(options, dict):
            options = options.get("interface")
        if options is not None:
            try:
                matching.compile_spec(options)
            except matching.SpecError as exc:
                raise ConfigError(str(exc), ("interface",)) from None
        return cls(options)

    def matchers(self) -> list[Matcher]:
        return [Matcher(self.event_type, self.index, self.predicate)]

    def event_fields(self) -> frozenset[str] | None:
        return NETWORK_FIELDS

    def event_hint(self) -> str:
        return f"{self.event_type} events"

    def describe(self) -> str:
        which = "any interface" if self.interface is None else f"interface {self.interface}"
        return f"{self.key} {which}"


@triggers.register
class NetworkUpTrigger(_NetworkTrigger):
    """An interface started running (up with a carrier)."""

    key = "network.up"
    event_type = "network.up"
    description = (
        "A network interface came up: network.up: {interface: eth0}, or {} for any. "
        "Event: interface"
    )


@triggers.register
class NetworkDownTrigger(_NetworkTrigger):
    """An interface stopped running or disappeared."""

    key = "network.down"
    event_type = "network.down"
    description = (
        "A network interface went down or disappeared: network.down: {interface: wlan0}, "
        "or {} for any. Event: interface"
    )
