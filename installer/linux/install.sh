#!/usr/bin/env sh
# Install (or upgrade) the Xiaoer desktop bundle for the current user, no root and no Python needed.
#
#   ./install.sh            run from inside the unpacked bundle folder (the one holding `xiaoer`)
#   ./install.sh --remove   remove the program and menu entry (your data stays)
#
# The program goes to ~/.local/opt/xiaoer (XIAOER_PREFIX overrides), a menu entry to
# ~/.local/share/applications, the icon to ~/.local/share/icons. An upgrade replaces the program
# folder only: the database, adapters, settings and models live in the data dir
# (~/.local/share/xiaoer), which is never touched here; a newer database schema is migrated, after
# a backup, on the first start of the new version.
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
PREFIX=${XIAOER_PREFIX:-"$HOME/.local/opt/xiaoer"}
APPS="${XDG_DATA_HOME:-$HOME/.local/share}/applications"
ICONS="${XDG_DATA_HOME:-$HOME/.local/share}/icons/hicolor/256x256/apps"

if [ "${1:-}" = "--remove" ]; then
    rm -rf "$PREFIX" "$APPS/xiaoer.desktop" "$ICONS/xiaoer.png"
    echo "Removed Xiaoer. Your data is still in ${XIAOER_HOME:-$HOME/.local/share/xiaoer}."
    exit 0
fi
[ -x "$HERE/xiaoer" ] || { echo "Run this from the unpacked Xiaoer folder (no ./xiaoer next to it)." >&2; exit 1; }

# Copy to a new folder first, then swap: a failed copy leaves the installed version working.
mkdir -p "$(dirname "$PREFIX")" "$APPS" "$ICONS"
rm -rf "$PREFIX.new"
cp -a "$HERE" "$PREFIX.new"
rm -rf "$PREFIX.old"
[ -d "$PREFIX" ] && mv "$PREFIX" "$PREFIX.old"
mv "$PREFIX.new" "$PREFIX"
rm -rf "$PREFIX.old"

sed "s|@BUNDLE@|$PREFIX|g" "$HERE/xiaoer.desktop" > "$APPS/xiaoer.desktop"
cp "$HERE/xiaoer.png" "$ICONS/xiaoer.png"
command -v update-desktop-database >/dev/null 2>&1 && update-desktop-database -q "$APPS" || true

echo "Installed Xiaoer $("$PREFIX/xiaoer" --version | cut -d' ' -f2) in $PREFIX."
echo "Start it from the applications menu, or run $PREFIX/xiaoer."
echo "The first start assembles and checks the built-in model (about a minute)."
