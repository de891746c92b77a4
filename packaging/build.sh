#!/usr/bin/env bash
# Build Nerve's bundled app: a one-folder build (dist/nerve/) that runs on a
# machine without Python, and optionally an AppImage made from it.
#
#   packaging/build.sh [--appimage] [--dist DIR] [--work DIR]
#
#   --appimage   also lay out dist/Nerve.AppDir (AppRun, nerve.desktop, icon) and,
#                when appimagetool is on PATH (or $APPIMAGETOOL names it), pack it
#                into dist/Nerve-VERSION-ARCH.AppImage
#   --dist DIR   where the results go (default: dist/ in the checkout)
#   --work DIR   PyInstaller's work folder (default: build/pyinstaller/)
#
# Python: $PYTHON, else the checkout's .venv, else python3; it needs Nerve and
# PyInstaller installed (pip install -e '.[bundle]').
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dist="$root/dist"
work="$root/build/pyinstaller"
appimage=0

usage() {
  # The comment block at the top of this file.
  awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"
}

while (($#)); do
  case "$1" in
    --appimage) appimage=1 ;;
    --dist) dist="${2:?--dist needs a folder}"; shift ;;
    --work) work="${2:?--work needs a folder}"; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "build.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done
mkdir -p "$dist" "$work"
dist="$(cd "$dist" && pwd)"
work="$(cd "$work" && pwd)"

if [[ -n "${PYTHON:-}" ]]; then
  python="$PYTHON"
elif [[ -x "$root/.venv/bin/python" ]]; then
  python="$root/.venv/bin/python"
else
  python="$(command -v python3 || true)"
fi
if [[ -z "$python" ]] || ! "$python" -c 'import PyInstaller, nerve' 2>/dev/null; then
  echo "build.sh: ${python:-python3} lacks PyInstaller or Nerve; run: pip install -e '.[bundle]'" >&2
  exit 1
fi

if [[ "$(uname -s)" == Linux ]] && { ! command -v objdump >/dev/null || ! command -v strip >/dev/null; }; then
  echo "build.sh: PyInstaller needs objdump and strip: install binutils" >&2
  exit 1
fi

version="$("$python" -c 'import sys; sys.path.insert(0, sys.argv[1]); import nerve; print(nerve.__version__)' "$root/app")"
started=$SECONDS

echo "building Nerve $version (one folder) into $dist/nerve"
"$python" -m PyInstaller --noconfirm --log-level WARN \
  --distpath "$dist" --workpath "$work" "$root/packaging/nerve.spec"

# Fail here, not on a user's machine: the bundle must start by itself.
env -i HOME="${HOME:-/tmp}" PATH=/usr/bin:/bin "$dist/nerve/nerve" --version >/dev/null

size="$(du -sh "$dist/nerve" | cut -f1)"
echo "built $dist/nerve ($size) in $((SECONDS - started)) s"

if ((appimage)); then
  appdir="$dist/Nerve.AppDir"
  recipe="$root/packaging/appimage"
  rm -rf "$appdir"
  mkdir -p "$appdir/usr/lib" "$appdir/usr/share/applications" \
    "$appdir/usr/share/icons/hicolor/scalable/apps"
  # cp -a: PyInstaller 6 bundles hold symbolic links; copies would double the size.
  cp -a "$dist/nerve" "$appdir/usr/lib/nerve"
  install -m 755 "$recipe/AppRun" "$appdir/AppRun"
  sed "s/@VERSION@/$version/" "$recipe/nerve.desktop" >"$appdir/nerve.desktop"
  cp "$appdir/nerve.desktop" "$appdir/usr/share/applications/nerve.desktop"
  cp -L "$recipe/nerve.svg" "$appdir/nerve.svg"
  cp -L "$recipe/nerve.svg" "$appdir/usr/share/icons/hicolor/scalable/apps/nerve.svg"
  ln -s nerve.svg "$appdir/.DirIcon"
  "$appdir/AppRun" --version >/dev/null
  echo "laid out $appdir"

  tool="${APPIMAGETOOL:-$(command -v appimagetool || command -v appimagetool-x86_64.AppImage || true)}"
  if [[ -n "$tool" ]]; then
    arch="$(uname -m)"
    out="$dist/Nerve-$version-$arch.AppImage"
    ARCH="$arch" "$tool" --no-appstream "$appdir" "$out"
    echo "built $out ($(du -sh "$out" | cut -f1))"
  else
    echo "appimagetool not found: the AppDir is ready; pack it with" >&2
    echo "  ARCH=$(uname -m) appimagetool $appdir" >&2
  fi
fi
