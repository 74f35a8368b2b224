#!/bin/sh
# Install the one-folder app for the current user: menu entry, icon, AppStream metainfo.
#   packaging/install-desktop.sh [dist/idstudio] [PREFIX=~/.local]
set -eu
APP=${1:-dist/idstudio}
PREFIX=${2:-$HOME/.local}
[ -x "$APP/idstudio" ] || { echo "no app at $APP: build it first with 'make package'" >&2; exit 2; }
mkdir -p "$PREFIX/opt" "$PREFIX/bin" "$PREFIX/share/applications" "$PREFIX/share/metainfo" \
         "$PREFIX/share/icons/hicolor/256x256/apps" "$PREFIX/share/icons/hicolor/scalable/apps"
rm -rf "$PREFIX/opt/idstudio"
cp -a "$APP" "$PREFIX/opt/idstudio"
ln -sf "$PREFIX/opt/idstudio/idstudio" "$PREFIX/bin/idstudio"
SHARE="$PREFIX/opt/idstudio/share"
sed "s|^Exec=idstudio|Exec=$PREFIX/bin/idstudio|; s|^TryExec=idstudio|TryExec=$PREFIX/bin/idstudio|" \
    "$SHARE/idstudio.desktop" > "$PREFIX/share/applications/io.idstudio.IdStudio.desktop"
cp "$SHARE/io.idstudio.IdStudio.metainfo.xml" "$PREFIX/share/metainfo/"
cp "$SHARE/idstudio-256.png" "$PREFIX/share/icons/hicolor/256x256/apps/io.idstudio.IdStudio.png"
cp "$SHARE/idstudio.svg" "$PREFIX/share/icons/hicolor/scalable/apps/io.idstudio.IdStudio.svg"
command -v update-desktop-database >/dev/null && update-desktop-database -q "$PREFIX/share/applications" || true
echo "installed: $PREFIX/bin/idstudio (menu entry 'idstudio'); check the set-up with: idstudio doctor"
