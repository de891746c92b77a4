"""Devices plugged in and out: ``device.added`` / ``device.removed`` events and triggers.

The listener reads the kernel's uevents from its netlink socket
(NETLINK_KOBJECT_UEVENT, the kernel's multicast group) directly, as udevd
itself does, rather than through pyudev: pyudev (libudev) receives what udevd
re-broadcasts, so nothing arrives where udevd does not run (containers,
minimal systems, some CI machines), and it would add a C library for what is
a split on NUL bytes. Any user may read this socket. The kernel sends uevents
to the machine's own network namespace only: inside a container with a
network of its own, none arrive.

A uevent names the device (``DEVPATH``), its subsystem and type and, for USB
and input devices, the vendor and product ids; names (manufacturer, product,
an input device's name) are read from sysfs when the device is added and
remembered for its removal (sysfs is gone by then). Devices already present
when the listener starts are read from sysfs once, for the same reason.

One USB mouse makes several uevents (the USB device, its interfaces, the
input device, its event and mouse nodes, a hidraw node). Each is published,
with ``whole: true`` on the one that stands for the whole device: a USB
device, and, when not part of one, a disk, an input device, a sound card, a
network interface... A trigger without ``subsystem`` or ``type`` fires on
whole devices only, so plugging in a USB mouse fires it once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import select
import socket
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from nerve import matching
from nerve.engine.registry import CompileContext, ConfigError, Matcher, Trigger, triggers
from nerve.events import Event
from nerve.listeners.base import Listener, ListenerUnavailable, Need, listeners

log = logging.getLogger(__name__)

NETLINK_KOBJECT_UEVENT = 15
KERNEL_GROUP = 1
#: The largest uevent the kernel sends is 2 KiB of environment; room to spare.
RECV_BYTES = 1 << 16
JOIN_TIMEOUT_S = 5.0
#: Devices remembered for their removal (by DEVPATH).
MAX_REMEMBERED = 4096

ACTIONS = {"add": "device.added", "remove": "device.removed"}
FIELDS = (
    "subsystem",
    "devtype",
    "vendor_id",
    "product_id",
    "vendor",
    "product",
    "name",
    "devpath",
    "devname",
    "whole",
)
#: Subsystems whose every device is a whole one.
_WHOLE_SUBSYSTEMS = frozenset({"net", "bluetooth", "thunderbolt", "video4linux"})
_CARD = re.compile(r"card[0-9]+\Z")
#: A devpath below a USB device (which has a uevent of its own).
_USB_PART = re.compile(r"/usb[0-9]+/[0-9]+-[0-9.]+/")
_HEX4 = re.compile(r"[0-9a-fA-F]{1,8}\Z")


def parse_uevent(payload: bytes) -> dict[str, str] | None:
    """The properties of a kernel uevent (``ACTION@DEVPATH`` then ``KEY=VALUE``
    strings, each ended by NUL); None for anything else (udevd's ``libudev``
    messages, garbage)."""
    if payload.startswith(b"libudev\0"):
        return None
    head, _, rest = payload.partition(b"\0")
    action, at, devpath = head.partition(b"@")
    if not at or not action or not devpath.startswith(b"/"):
        return None
    props: dict[str, str] = {}
    for item in rest.split(b"\0"):
        key, eq, value = item.partition(b"=")
        if eq and key:
            props[key.decode("ascii", "replace")] = value.decode("utf-8", "replace")
    props.setdefault("ACTION", action.decode("ascii", "replace"))
    props.setdefault("DEVPATH", devpath.decode("utf-8", "replace"))
    return props


def _hex_id(text: str) -> str:
    text = text.strip()
    if not _HEX4.match(text):
        return ""
    return f"{int(text, 16):04x}"


def _ids(props: dict[str, str]) -> tuple[str, str]:
    """(vendor_id, product_id) as 4-digit lower-case hex, or "" each."""
    product = props.get("PRODUCT", "")
    parts = product.split("/")
    if props.get("SUBSYSTEM") == "usb" and len(parts) >= 2:
        return _hex_id(parts[0]), _hex_id(parts[1])
    if props.get("SUBSYSTEM") == "input" and len(parts) >= 3:
        return _hex_id(parts[1]), _hex_id(parts[2])
    hid = props.get("HID_ID", "").split(":")
    if len(hid) == 3:
        return _hex_id(hid[1]), _hex_id(hid[2])
    pci = props.get("PCI_ID", "").split(":")
    if len(pci) == 2:
        return _hex_id(pci[0]), _hex_id(pci[1])
    return "", ""


def is_whole(props: dict[str, str]) -> bool:
    """Whether the uevent is about a whole device, not one of its parts."""
    subsystem = props.get("SUBSYSTEM", "")
    devtype = props.get("DEVTYPE", "")
    if subsystem == "usb":
        return devtype == "usb_device"
    if _USB_PART.search(props.get("DEVPATH", "")):
        return False  # the disk of a USB stick, the input device of a USB mouse
    if subsystem == "block":
        return devtype == "disk"
    if subsystem == "input":
        return "DEVNAME" not in props  # inputN, not its event/mouse/js nodes
    if subsystem == "sound":
        return bool(_CARD.match(props.get("DEVPATH", "").rsplit("/", 1)[-1]))
    return subsystem in _WHOLE_SUBSYSTEMS


#: Where sysfs is.
SYSFS_ROOT = "/sys"


class Sysfs:
    """Names from sysfs, under ``root`` (``/sys``; a folder of files in tests)."""

    def __init__(self, root: str | None = None) -> None:
        self.root = root if root is not None else SYSFS_ROOT

    def attr(self, devpath: str, name: str) -> str:
        if ".." in devpath.split("/"):
            return ""
        try:
            with open(f"{self.root}{devpath}/{name}", "rb") as f:
                return f.read(512).decode("utf-8", "replace").strip()
        except OSError:
            return ""

    def present(self) -> list[dict[str, str]]:
        """Properties of the USB and input devices there now (their ``uevent`` files)."""
        found = []
        for folder in ("bus/usb/devices", "class/input"):
            base = Path(self.root, folder)
            try:
                entries = sorted(base.iterdir())
            except OSError:
                continue
            for entry in entries:
                try:
                    real = entry.resolve()
                    text = (real / "uevent").read_text("utf-8", "replace")
                except OSError:
                    continue
                props = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
                props["DEVPATH"] = "/" + str(real.relative_to(Path(self.root).resolve()))
                props.setdefault("SUBSYSTEM", "usb" if "usb" in folder else "input")
                found.append(props)
        return found


def describe(props: dict[str, str], sysfs: Sysfs) -> dict[str, object]:
    """The event data for a device's uevent (names read from sysfs)."""
    devpath = props.get("DEVPATH", "")
    vendor_id, product_id = _ids(props)
    vendor = product = name = ""
    subsystem = props.get("SUBSYSTEM", "")
    if subsystem == "usb" and props.get("DEVTYPE") == "usb_device":
        vendor = sysfs.attr(devpath, "manufacturer")
        product = sysfs.attr(devpath, "product")
        vendor_id = vendor_id or _hex_id(sysfs.attr(devpath, "idVendor"))
        product_id = product_id or _hex_id(sysfs.attr(devpath, "idProduct"))
    elif subsystem == "input":
        name = props.get("NAME", "").strip('"') or sysfs.attr(devpath, "name")
    elif subsystem == "block":
        vendor = sysfs.attr(devpath, "device/vendor")
        product = sysfs.attr(devpath, "device/model")
    if not name:
        name = props.get("HID_NAME", "") or product or props.get("INTERFACE", "")
        name = name or devpath.rsplit("/", 1)[-1]
    devname = props.get("DEVNAME", "")
    return {
        "subsystem": subsystem,
        "devtype": props.get("DEVTYPE", "") or subsystem,
        "vendor_id": vendor_id,
        "product_id": product_id,
        "vendor": vendor,
        "product": product,
        "name": name,
        "devpath": devpath,
        "devname": f"/dev/{devname}" if devname and not devname.startswith("/") else devname,
        "whole": is_whole(props),
    }


def open_uevent_socket() -> socket.socket:
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_KOBJECT_UEVENT)
    try:
        sock.bind((0, KERNEL_GROUP))
    except OSError:
        sock.close()
        raise
    return sock


def _open_default() -> socket.socket:
    return open_uevent_socket()  # looked up when called (tests replace it)


@listeners.register
class DeviceListener(Listener):
    """Kernel uevents: devices added and removed."""

    id = "devices"
    description = "Devices plugged in and out (kernel uevents)"

    def __init__(
        self,
        bus: Any,
        on_failure: Any,
        *,
        opener: Callable[[], socket.socket] | None = None,
        sysfs: Sysfs | None = None,
    ) -> None:
        super().__init__(bus, on_failure)
        self._opener = opener or _open_default
        self.sysfs = sysfs or Sysfs()
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._wake_r = self._wake_w = -1
        #: What was read of each device when it was added (sysfs is gone at removal).
        self._known: dict[str, dict[str, object]] = {}
        self.seen = 0

    def start(self, needs: Sequence[Need]) -> None:
        try:
            self._sock = self._opener()
        except (OSError, AttributeError) as exc:  # AttributeError: no AF_NETLINK (not Linux)
            raise ListenerUnavailable(
                f"kernel uevents cannot be read here: {exc} (devices are followed on Linux only)"
            ) from None
        self._stopping.clear()
        for props in self.sysfs.present():
            self._remember(props.get("DEVPATH", ""), describe(props, self.sysfs))
        self._wake_r, self._wake_w = os.pipe()
        self._thread = threading.Thread(target=self._loop, name="devices", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._wake_w >= 0:
            with contextlib.suppress(OSError):
                os.write(self._wake_w, b"x")
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(JOIN_TIMEOUT_S)
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        for fd in (self._wake_r, self._wake_w):
            if fd >= 0:
                os.close(fd)
        self._wake_r = self._wake_w = -1

    def detail(self) -> str:
        return f"kernel uevents; {len(self._known)} device(s) known, {self.seen} uevent(s) seen"

    def _loop(self) -> None:
        sock = self._sock
        assert sock is not None
        try:
            while not self._stopping.is_set():
                readable, _, _ = select.select([sock.fileno(), self._wake_r], [], [])
                if self._wake_r in readable:
                    return
                try:
                    payload = sock.recv(RECV_BYTES)
                except BlockingIOError:
                    continue
                except OSError as exc:
                    if exc.errno == 105:  # ENOBUFS: the kernel dropped uevents
                        log.warning("devices: the kernel dropped uevents (queue full)")
                        continue
                    raise
                self.feed(payload)
        except Exception as exc:
            if not self._stopping.is_set():
                self.failed(exc)

    def feed(self, payload: bytes) -> None:
        """One datagram from the socket (the reader's whole work, on its thread)."""
        props = parse_uevent(payload)
        if props is None:
            return
        self.seen += 1
        type_ = ACTIONS.get(props.get("ACTION", ""))
        if type_ is None:
            return
        devpath = props.get("DEVPATH", "")
        if type_ == "device.added":
            data = describe(props, self.sysfs)
            self._remember(devpath, data)
        else:
            data = describe(props, _NO_SYSFS)
            known = self._known.pop(devpath, None)
            if known is not None:
                data = {**known, **{k: v for k, v in data.items() if v and k != "name"}}
        self.publish(type_, dict(data))

    def _remember(self, devpath: str, data: dict[str, object]) -> None:
        if not devpath:
            return
        self._known.pop(devpath, None)
        self._known[devpath] = data
        while len(self._known) > MAX_REMEMBERED:
            del self._known[next(iter(self._known))]


class _NoSysfs(Sysfs):
    def attr(self, devpath: str, name: str) -> str:
        return ""


_NO_SYSFS = _NoSysfs()


# ---------------------------------------------------------------------------
# Triggers

_SPEC = matching.SPEC_SCHEMA
_OPTIONS: dict[str, Any] = {
    "anyOf": [
        {"type": "null"},
        {
            "type": "object",
            "properties": {
                "vendor": {**_SPEC, "description": "Vendor id (046d) or name (Logitech*)"},
                "product": {**_SPEC, "description": "Product id (c52b) or name"},
                "name": {**_SPEC, "description": "The device's name (an input device's, ...)"},
                "subsystem": {**_SPEC, "description": "usb, input, block, sound, net, ..."},
                "type": {
                    **_SPEC,
                    "description": "usb_device, disk, partition, ... or the subsystem",
                },
            },
            "additionalProperties": False,
        },
    ]
}


#: The event field a trigger option looks at (``type`` is an event's own type).
_EVENT_FIELD = {"type": "devtype"}
#: A vendor or product id as written in a rule: four hex digits, maybe negated.
_ID_SPEC = re.compile(r"!?[0-9a-fA-F]{4}\Z")


class _DeviceTrigger(Trigger):
    event_type = ""
    listeners = frozenset({"devices"})
    schema = _OPTIONS

    def __init__(self, specs: dict[str, Any]) -> None:
        self.specs = specs
        #: (event field, check) pairs; vendor and product look at the id when
        #: written as one (046d, !046d), else at the name.
        self.checks: list[tuple[str, Any]] = []
        for name, spec in specs.items():
            field, wanted = _EVENT_FIELD.get(name, name), spec
            if name in ("vendor", "product") and isinstance(spec, str) and _ID_SPEC.match(spec):
                field, wanted = f"{name}_id", spec.lower()
            self.checks.append((field, matching.compile_spec(wanted)))
        self.whole_only = "subsystem" not in specs and "type" not in specs

    @classmethod
    def compile(cls, options: Any, ctx: CompileContext) -> _DeviceTrigger:
        specs = dict(options or {})
        for name, spec in specs.items():
            try:
                matching.compile_spec(spec)
            except matching.SpecError as exc:
                raise ConfigError(str(exc), (name,)) from None
        return cls(specs)

    def matchers(self) -> list[Matcher]:
        return [Matcher(self.event_type, predicate=self._matches)]

    def _matches(self, event: Event) -> bool:
        if self.whole_only and not event.get("whole"):
            return False
        return all(check(event.get(field, matching.MISSING)) for field, check in self.checks)

    def event_fields(self) -> frozenset[str] | None:
        return frozenset(FIELDS)

    def event_hint(self) -> str:
        return f"{self.event_type} events"

    def describe(self) -> str:
        shown = ", ".join(f"{k} {v!r}" for k, v in self.specs.items()) or "any device"
        return f"{self.event_type} {shown}"


_HELP = (
    "vendor, product (a 4-digit hex id such as 046d, else the name), name, subsystem "
    "(usb, input, block...), type (usb_device, disk...; the event's devtype): text, glob, "
    "!negation or {regex: ...}; without subsystem or type, whole devices only. Event: "
    + ", ".join(FIELDS)
)


@triggers.register
class DeviceAddedTrigger(_DeviceTrigger):
    """A device was plugged in."""

    key = "device.added"
    event_type = "device.added"
    description = f"A device was plugged in (kernel uevent): {_HELP}"


@triggers.register
class DeviceRemovedTrigger(_DeviceTrigger):
    """A device was unplugged."""

    key = "device.removed"
    event_type = "device.removed"
    description = f"A device was unplugged (kernel uevent): {_HELP}"
