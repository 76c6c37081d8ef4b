#!/usr/bin/env bash
# Build dist/Xiaoer.app and a disk image on macOS (NOT tested: no Mac was available to this work).
# Run from the repository root with Python 3.11 and the Xcode command line tools (llama-cpp-python
# compiles with Metal). The spec's BUNDLE step makes the .app on macOS.
set -euo pipefail
[[ -d .venv ]] || python3.11 -m venv .venv
.venv/bin/pip install -e ".[installer]"
XIAOER_FLAVOUR=${FLAVOUR:-lite} .venv/bin/pyinstaller --noconfirm --clean --distpath dist \
    --workpath build/pyinstaller installer/xiaoer.spec
# The smoke test, against the program inside the .app.
installer/smoke_test.sh dist/Xiaoer.app/Contents/MacOS
# Unsigned: shop staff open it the first time with right-click → Open. To sign and notarize:
#   codesign --deep --force --options runtime --sign "Developer ID Application: …" dist/Xiaoer.app
#   xcrun notarytool submit dist/Xiaoer.dmg --keychain-profile … --wait
hdiutil create -volname Xiaoer -srcfolder dist/Xiaoer.app -ov -format UDZO dist/Xiaoer.dmg
echo "dist/Xiaoer.dmg"
