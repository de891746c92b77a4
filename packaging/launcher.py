"""Entry point of the bundled app (PyInstaller): the same ``nerve`` command as the package.

Two things happen before Nerve's own code runs:

* The environment that programs started by rules inherit is put back the way
  the user had it. PyInstaller's bootloader points ``LD_LIBRARY_PATH`` at the
  bundle's libraries and its Qt hook points ``QT_PLUGIN_PATH`` at the bundle's
  Qt plugins; a program that a rule starts (a terminal, a browser, another Qt
  application) must not load those. This process keeps what it needs: the
  dynamic loader read ``LD_LIBRARY_PATH`` when the process started, and
  PySide6 finds its plugins through the embedded ``qt.conf``.
* ``NERVE_BUNDLE_SELFTEST=1 nerve`` prints a JSON report of what the bundle
  holds (listener modules, shipped packs, entry points, image formats...) and
  exits: tests/test_bundle.py and anyone debugging a bundle use it.
"""

from __future__ import annotations

import os
import sys
from typing import Any


def _restore_environment() -> None:
    bundle = getattr(sys, "_MEIPASS", None)
    if "LD_LIBRARY_PATH_ORIG" in os.environ:
        os.environ["LD_LIBRARY_PATH"] = os.environ.pop("LD_LIBRARY_PATH_ORIG")
    elif bundle and sys.platform.startswith("linux"):
        os.environ.pop("LD_LIBRARY_PATH", None)
    if bundle:
        for name in ("QT_PLUGIN_PATH", "QML2_IMPORT_PATH"):
            if os.environ.get(name, "").startswith(bundle):
                del os.environ[name]
    # The bootloader's private variables: a bundled program that a rule starts
    # (this one, for `nerve emit`) must start as a new program, not as our child.
    for name in [n for n in os.environ if n.startswith("_PYI_")]:
        del os.environ[name]


def _self_test() -> dict[str, Any]:
    """What the frozen app can find at run time (printed as JSON)."""
    import importlib.metadata
    import importlib.util
    import pkgutil

    from nerve import __version__
    from nerve.engine.registry import actions, conditions, load_builtin_types, triggers
    from nerve.listeners import base as listener_base
    from nerve.paths import resources_dir, shipped_packs_dir

    load_builtin_types()
    report: dict[str, Any] = {
        "version": __version__,
        "frozen": bool(getattr(sys, "frozen", False)),
        "executable": sys.executable,
        "bundle": getattr(sys, "_MEIPASS", None),
        "sys_path": list(sys.path),
        "listener_modules": sorted(m for m in sys.modules if m.startswith("nerve.listeners.")),
        "listeners": sorted(listener_base.listeners.ids()),
        "triggers": triggers.keys(),
        "conditions": conditions.keys(),
        "actions": actions.keys(),
        "shipped_packs": sorted(p.name for p in shipped_packs_dir().glob("*.yaml")),
        "resources": sorted(p.name for p in resources_dir().iterdir()),
        "environment": {
            name: os.environ.get(name)
            for name in ("LD_LIBRARY_PATH", "QT_PLUGIN_PATH", "QML2_IMPORT_PATH")
        },
    }
    groups = ("apscheduler.triggers", "apscheduler.executors", "apscheduler.jobstores")
    report["entry_points"] = {
        group: sorted(ep.name for ep in importlib.metadata.entry_points(group=group))
        for group in groups
    }
    from apscheduler.schedulers.background import BackgroundScheduler

    scheduler = BackgroundScheduler()
    # A trigger by its alias goes through the entry points.
    job = scheduler.add_job(print, "cron", minute="*/5")
    report["cron_by_alias"] = type(job.trigger).__name__

    import jsonschema

    from nerve.packs.schema import pack_schema

    schema = pack_schema()
    jsonschema.validators.validator_for(schema).check_schema(schema)
    report["pack_schema_checked"] = True

    import watchdog.observers

    report["watchdog_observer"] = getattr(watchdog.observers.Observer, "__name__", "")
    # Listed, not imported: importing pynput opens a display.
    pynput = importlib.util.find_spec("pynput")
    folders = list(pynput.submodule_search_locations or []) if pynput else []
    report["pynput_backends"] = {
        part: sorted(m.name for m in pkgutil.iter_modules([os.path.join(f, part) for f in folders]))
        for part in ("keyboard", "mouse")
    }
    if sys.platform.startswith("linux"):
        from nerve.listeners import x11

        report["legacy_keysyms"] = len(x11._legacy()[0])
    report["qt"] = _qt_report()
    return report


def _qt_report() -> dict[str, Any]:
    """Qt without a display: image formats, and whether the SVG icons draw."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtGui import QGuiApplication, QImageReader

    from nerve.paths import resources_dir

    app = QGuiApplication.instance() or QGuiApplication([sys.argv[0]])
    formats = sorted(bytes(f.data()).decode() for f in QImageReader.supportedImageFormats())
    from PySide6.QtGui import QIcon

    icon = QIcon(str(resources_dir() / "nerve.svg"))
    image = icon.pixmap(32, 32).toImage()
    drawn = any(image.pixelColor(x, y).alpha() for x in range(32) for y in range(32))
    del app
    return {"image_formats": formats, "svg_icon_drawn": drawn}


def main() -> int:
    _restore_environment()
    if os.environ.pop("NERVE_BUNDLE_SELFTEST", ""):
        import json

        print(json.dumps(_self_test(), indent=2, sort_keys=True))
        return 0
    from nerve.cli import main as nerve_main

    return nerve_main()


if __name__ == "__main__":
    raise SystemExit(main())
