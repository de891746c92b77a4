"""Devices plugged in and out: kernel uevents replayed into the listener's reader.

The listener reads datagrams from the kernel's uevent netlink socket. Here
its socket is one end of a datagram socket pair and the test writes, on the
other end, uevents in the kernel's wire format (``ACTION@DEVPATH``, then
``KEY=VALUE`` strings, each ended by NUL), with the fields and values the
kernel sends when a Logitech USB receiver and a USB memory stick are plugged
in and out (as ``udevadm monitor --kernel --property`` shows them). sysfs is
a folder of real files laid out as the kernel's.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import LiveHarness, rules_from, wait_until
from nerve.listeners import devices
from nerve.listeners.devices import parse_uevent

USB = "/devices/pci0000:00/0000:00:14.0/usb1/1-2"
USB_IF = f"{USB}/1-2:1.0"
HID = f"{USB_IF}/0003:046D:C52B.0001"
INPUT = f"{HID}/input/input21"
STICK = "/devices/pci0000:00/0000:00:14.0/usb2/2-1"
DISK = f"{STICK}/2-1:1.0/host6/target6:0:0/6:0:0:0/block/sdb"


def uevent(action: str, devpath: str, **props: str) -> bytes:
    """A uevent as the kernel sends it."""
    fields = {"ACTION": action, "DEVPATH": devpath, **props}
    body = b"".join(f"{k}={v}".encode() + b"\0" for k, v in fields.items())
    return f"{action}@{devpath}".encode() + b"\0" + body


RECEIVER_ADD = [
    uevent(
        "add",
        USB,
        SUBSYSTEM="usb",
        MAJOR="189",
        MINOR="20",
        DEVNAME="bus/usb/001/021",
        DEVTYPE="usb_device",
        PRODUCT="46d/c52b/1211",
        TYPE="0/0/0",
        BUSNUM="001",
        DEVNUM="021",
        SEQNUM="5120",
    ),
    uevent(
        "add",
        USB_IF,
        SUBSYSTEM="usb",
        DEVTYPE="usb_interface",
        PRODUCT="46d/c52b/1211",
        TYPE="0/0/0",
        INTERFACE="3/1/1",
        MODALIAS="usb:v046DpC52Bd1211dc00dsc00dp00ic03isc01ip01in00",
        SEQNUM="5121",
    ),
    uevent(
        "add",
        HID,
        SUBSYSTEM="hid",
        HID_ID="0003:0000046D:0000C52B",
        HID_NAME="Logitech USB Receiver",
        HID_PHYS="usb-0000:00:14.0-2/input0",
        HID_UNIQ="",
        MODALIAS="hid:b0003g0000v0000046Dp0000C52B",
        SEQNUM="5122",
    ),
    uevent(
        "add",
        INPUT,
        SUBSYSTEM="input",
        PRODUCT="3/46d/c52b/111",
        NAME='"Logitech USB Receiver"',
        PHYS='"usb-0000:00:14.0-2/input0"',
        UNIQ='""',
        PROP="0",
        EV="120013",
        KEY="1000000000007 ff800000000007ff febeffdff3cfffff fffffffffffffffe",
        MSC="10",
        LED="1f",
        MODALIAS="input:b0003v046DpC52Be0111-e0,1,4,11,14,k71,72,ramlsfw",
        SEQNUM="5123",
    ),
    uevent(
        "add",
        f"{INPUT}/event7",
        SUBSYSTEM="input",
        MAJOR="13",
        MINOR="71",
        DEVNAME="input/event7",
        SEQNUM="5124",
    ),
    uevent(
        "bind", USB_IF, SUBSYSTEM="usb", DEVTYPE="usb_interface", DRIVER="usbhid", SEQNUM="5125"
    ),
    uevent("bind", USB, SUBSYSTEM="usb", DEVTYPE="usb_device", DRIVER="usb", SEQNUM="5126"),
]
RECEIVER_REMOVE = [
    uevent("remove", f"{INPUT}/event7", SUBSYSTEM="input", DEVNAME="input/event7", SEQNUM="5200"),
    uevent("remove", INPUT, SUBSYSTEM="input", PRODUCT="3/46d/c52b/111", SEQNUM="5201"),
    uevent("unbind", USB_IF, SUBSYSTEM="usb", DEVTYPE="usb_interface", SEQNUM="5202"),
    uevent(
        "remove",
        USB,
        SUBSYSTEM="usb",
        MAJOR="189",
        MINOR="20",
        DEVNAME="bus/usb/001/021",
        DEVTYPE="usb_device",
        PRODUCT="46d/c52b/1211",
        TYPE="0/0/0",
        BUSNUM="001",
        DEVNUM="021",
        SEQNUM="5203",
    ),
]
STICK_ADD = [
    uevent(
        "add",
        STICK,
        SUBSYSTEM="usb",
        DEVNAME="bus/usb/002/003",
        DEVTYPE="usb_device",
        PRODUCT="781/5581/100",
        TYPE="0/0/0",
        BUSNUM="002",
        DEVNUM="003",
        SEQNUM="6001",
    ),
    uevent(
        "add",
        DISK,
        SUBSYSTEM="block",
        MAJOR="8",
        MINOR="16",
        DEVNAME="sdb",
        DEVTYPE="disk",
        DISKSEQ="14",
        SEQNUM="6010",
    ),
    uevent(
        "add",
        f"{DISK}/sdb1",
        SUBSYSTEM="block",
        MAJOR="8",
        MINOR="17",
        DEVNAME="sdb1",
        DEVTYPE="partition",
        DISKSEQ="14",
        PARTN="1",
        SEQNUM="6011",
    ),
]


@pytest.fixture
def sysfs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "sys"
    for devpath, attrs in {
        USB: {"manufacturer": "Logitech\n", "product": "USB Receiver\n"},
        STICK: {"manufacturer": "SanDisk\n", "product": "Ultra\n"},
        f"{DISK}/device": {"vendor": "SanDisk \n", "model": "Ultra           \n"},
    }.items():
        folder = root / devpath.lstrip("/")
        folder.mkdir(parents=True)
        for name, value in attrs.items():
            (folder / name).write_text(value)
    monkeypatch.setattr(devices, "SYSFS_ROOT", str(root))
    return root


class Kernel:
    """The other end of the listener's socket."""

    def __init__(self) -> None:
        self.ours, self.theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)

    def send(self, *payloads: bytes) -> None:
        for payload in payloads:
            self.theirs.send(payload)

    def close(self) -> None:
        self.theirs.close()


@pytest.fixture
def kernel(monkeypatch: pytest.MonkeyPatch) -> Iterator[Kernel]:
    k = Kernel()
    monkeypatch.setattr(devices, "open_uevent_socket", lambda: k.ours)
    yield k
    k.close()


def test_a_receiver_plugged_in_and_out(live: LiveHarness, kernel: Kernel, sysfs: Path) -> None:
    live.load("""
  - id: logitech
    mode: queued
    when: {device.added: {vendor: "046d"}}
    do: [{emit: {type: test.plugged, data: {name: "{event.name}", product: "{event.product}"}}}]
  - id: gone
    mode: queued
    when: {device.removed: {vendor: "Logitech*", product: "c52b"}}
    do: [{emit: {type: test.gone, data: {product: "{event.product}", vendor: "{event.vendor}"}}}]
  - id: keyboards
    mode: queued
    when: {device.added: {subsystem: input, name: "*Receiver"}}
    do: [{log: x}]
""")
    live.listener("devices")
    kernel.send(*RECEIVER_ADD)
    added = live.recorder.wait("device.added", 5)
    assert [e.data["devpath"] for e in added] == [USB, USB_IF, HID, INPUT, f"{INPUT}/event7"]
    usb = dict(added[0].data)
    assert usb == {
        "subsystem": "usb",
        "devtype": "usb_device",
        "vendor_id": "046d",
        "product_id": "c52b",
        "vendor": "Logitech",
        "product": "USB Receiver",
        "name": "USB Receiver",
        "devpath": USB,
        "devname": "/dev/bus/usb/001/021",
        "whole": True,
    }
    assert added[0].source == "devices"
    assert dict(added[3].data) | {"devpath": ""} == {
        "subsystem": "input",
        "devtype": "input",
        "vendor_id": "046d",
        "product_id": "c52b",
        "vendor": "",
        "product": "",
        "name": "Logitech USB Receiver",
        "devpath": "",
        "devname": "",
        "whole": False,  # part of the USB device
    }
    assert [e.data["whole"] for e in added] == [True, False, False, False, False]
    assert added[2].data["vendor_id"] == "046d"  # from HID_ID
    (plugged,) = live.recorder.wait("test.plugged", 1)
    assert dict(plugged.data) == {"name": "USB Receiver", "product": "USB Receiver"}
    wait_until(lambda: live.summary("keyboards")["fired"] == 1, what="the input rule")

    kernel.send(*RECEIVER_REMOVE)
    removed = live.recorder.wait("device.removed", 3)
    # Names come from what was read when it was added.
    assert removed[-1].data["vendor"] == "Logitech"
    assert removed[-1].data["product"] == "USB Receiver"
    (gone,) = live.recorder.wait("test.gone", 1)
    assert dict(gone.data) == {"product": "USB Receiver", "vendor": "Logitech"}
    assert live.summary("logitech")["fired"] == 1  # the whole device only
    # bind/unbind are not additions nor removals.
    assert len(live.recorder.of("device.added")) == 5
    assert len(live.recorder.of("device.removed")) == 3


def test_a_memory_stick_its_disk_and_partition(
    live: LiveHarness, kernel: Kernel, sysfs: Path
) -> None:
    live.load("""
  - {id: disks, mode: queued, when: {device.added: {subsystem: block, type: disk}}, do: [{log: x}]}
  - {id: parts, mode: queued, when: {device.added: {type: partition}}, do: [{log: x}]}
  - {id: sandisk, mode: queued, when: {device.added: {vendor: "SanDisk"}}, do: [{log: x}]}
  - {id: nothing, mode: queued, when: {device.added: {vendor: "!SanDisk"}}, do: [{log: x}]}
  - {id: ids, mode: queued, when: {device.added: {vendor: "0781", product: "5581"}}, do: [{log: x}]}
  - {id: upper, when: {device.added: {vendor: "0781", product: "!558A"}}, do: [{log: x}]}
""")
    live.listener("devices")
    kernel.send(*STICK_ADD)
    added = live.recorder.wait("device.added", 3)
    disk = added[1].data
    assert (disk["devtype"], disk["devname"], disk["vendor"], disk["product"]) == (
        "disk",
        "/dev/sdb",
        "SanDisk",
        "Ultra",
    )
    assert added[2].data["devtype"] == "partition"
    assert added[2].data["whole"] is False

    def fired() -> dict[str, int]:
        rules = ("disks", "parts", "sandisk", "nothing", "ids", "upper")
        return {n: live.summary(n)["fired"] for n in rules}

    wait_until(lambda: fired()["parts"] == 1, what="the partition rule")
    # The stick is one whole device; its disk is part of it.
    assert added[1].data["whole"] is False
    want = {"disks": 1, "parts": 1, "sandisk": 1, "nothing": 0, "ids": 1, "upper": 1}
    wait_until(lambda: fired() == want, what=f"{want}")


def test_devices_there_before_the_start_keep_their_names(
    live: LiveHarness, kernel: Kernel, sysfs: Path
) -> None:
    """The stick was plugged in before Nerve started: sysfs lists it."""
    folder = sysfs / STICK.lstrip("/")
    (folder / "uevent").write_text(
        "MAJOR=189\nMINOR=130\nDEVNAME=bus/usb/002/003\nDEVTYPE=usb_device\n"
        "DRIVER=usb\nPRODUCT=781/5581/100\nTYPE=0/0/0\nBUSNUM=002\nDEVNUM=003\n"
    )
    links = sysfs / "bus/usb/devices"
    links.mkdir(parents=True)
    (links / "2-1").symlink_to(folder)
    live.load("\n  - {id: out, when: {device.removed: {product: Ultra}}, do: [{log: x}]}\n")
    live.listener("devices")
    kernel.send(uevent("remove", STICK, SUBSYSTEM="usb", DEVTYPE="usb_device", SEQNUM="7000"))
    (event,) = live.recorder.wait("device.removed", 1)
    assert (event.data["vendor"], event.data["product"], event.data["vendor_id"]) == (
        "SanDisk",
        "Ultra",
        "0781",
    )
    wait_until(lambda: live.summary("out")["fired"] == 1, what="the removal rule")


def test_what_is_not_a_kernel_uevent_is_ignored(
    live: LiveHarness, kernel: Kernel, sysfs: Path
) -> None:
    live.load("\n  - {id: any, when: {device.added: {subsystem: '*'}}, do: [{log: x}]}\n")
    live.listener("devices")
    kernel.send(
        b"libudev\0\xfe\xed\xca\xfe" + b"\0" * 32,  # udevd's re-broadcast
        b"",
        b"garbage without an at sign\0ACTION=add\0",
        b"add@not-a-path\0ACTION=add\0",
        b"\xff\xfe@/x\0\x00\x00",
        uevent("change", USB, SUBSYSTEM="usb"),
        uevent("add", "/devices/virtual/net/tap0", SUBSYSTEM="net", INTERFACE="tap0"),
    )
    (event,) = live.recorder.wait("device.added", 1)
    assert (event.data["subsystem"], event.data["name"], event.data["whole"]) == (
        "net",
        "tap0",
        True,
    )
    assert live.listeners.status()[0]["state"] == "running"


def test_the_real_socket_opens_and_the_listener_stops(live: LiveHarness) -> None:
    """The kernel's socket itself (no uevent is made: that would touch the machine)."""
    live.load("\n  - {id: any, when: {device.added: null}, do: [{log: x}]}\n")
    status = live.listener("devices")
    assert "kernel uevents" in status["detail"]
    live.load("\n  - {id: other, when: {event: x}, do: [{log: x}]}\n")
    wait_until(
        lambda: not any(s["id"] == "devices" for s in live.listeners.status()),
        what="the listener stopped",
    )
    wait_until(
        lambda: not any(t.name == "devices" for t in threading.enumerate()),
        what="its thread ended",
    )


def test_bad_options_are_load_errors() -> None:
    from nerve.packs.loader import load_pack

    for options, where in (
        ("{vendr: x}", "vendr"),
        ("{name: {regex: '('}}", "name"),
        ("{whole: true}", "whole"),
    ):
        text = (
            "nerve: 1\npack: {id: t}\nrules:\n  - id: r\n"
            f"    when: {{device.added: {options}}}\n    do: [{{log: x}}]\n"
        )
        errors = [str(e) for e in load_pack(text.encode(), filename="p.yaml").errors]
        assert errors, options
        assert errors[0].startswith("p.yaml:5:"), errors
        assert where in errors[0], errors
    (rule,) = rules_from(
        "\n  - {id: r, when: {device.removed: null}, do: [{log: '{event.vendor} {event.name}'}]}\n"
    )
    assert rule.capabilities == frozenset()


_KEYS = st.text(st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZ_"), min_size=1, max_size=12)
_VALUES = st.text(
    st.characters(blacklist_characters="\0", blacklist_categories=("Cs",)), max_size=40
)


@settings(max_examples=400, deadline=None)
@given(
    st.sampled_from(["add", "remove", "change", "bind", "move"]),
    st.text(st.characters(blacklist_characters="\0/", blacklist_categories=("Cs",)), max_size=30),
    st.dictionaries(_KEYS, _VALUES, max_size=10),
)
def test_parse_reads_back_what_the_kernel_wrote(
    action: str, leaf: str, props: dict[str, str]
) -> None:
    devpath = f"/devices/{leaf}"
    props = {k: v for k, v in props.items() if k not in ("ACTION", "DEVPATH")}
    parsed = parse_uevent(uevent(action, devpath, **props))
    assert parsed == {"ACTION": action, "DEVPATH": devpath, **props}


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300))
def test_parse_never_raises_on_any_bytes(payload: bytes) -> None:
    result = parse_uevent(payload)
    assert result is None or ("ACTION" in result and "DEVPATH" in result)
    if result is not None:
        devices.describe(result, devices.Sysfs("/nonexistent"))
