# Build the Windows installer (NOT tested: no Windows machine was available to this work).
# Run from the repository root in PowerShell, with Python 3.11, a C++ compiler for
# llama-cpp-python (Visual Studio Build Tools) and Inno Setup 6 installed.
$ErrorActionPreference = "Stop"
if (-not (Test-Path .venv)) { py -3.11 -m venv .venv }
.venv\Scripts\python -m pip install --upgrade pip
.venv\Scripts\pip install -e ".[installer]"
.venv\Scripts\python installer\windows\make_ico.py
$env:XIAOER_FLAVOUR = "lite"
.venv\Scripts\pyinstaller --noconfirm --clean --distpath dist --workpath build\pyinstaller installer\xiaoer.spec
# The same smoke as on Linux, by hand: a fresh data dir, an empty models dir, offscreen.
$env:XIAOER_HOME = Join-Path $env:TEMP "xiaoer-smoke"; $env:XIAOER_MODELS_DIR = Join-Path $env:TEMP "xiaoer-smoke-models"
$env:QT_QPA_PLATFORM = "offscreen"
# xiaoer.exe is a windowed program (no console window beside the app), so wait for it explicitly.
$smoke = Start-Process dist\xiaoer\xiaoer.exe -ArgumentList "gui", "--smoke" -Wait -PassThru -NoNewWindow
if ($smoke.ExitCode -ne 0) { throw "smoke test failed (see $env:XIAOER_HOME\logs\ui.log)" }
Remove-Item Env:XIAOER_HOME, Env:XIAOER_MODELS_DIR, Env:QT_QPA_PLATFORM
& "${env:ProgramFiles(x86)}\Inno Setup 6\ISCC.exe" installer\windows\xiaoer.iss
