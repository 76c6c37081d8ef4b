; Inno Setup 6 script for the Xiaoer desktop bundle on Windows (NOT tested: no Windows machine was
; available to this work). Build the bundle on Windows first, then compile this script:
;
;   py -3.11 -m venv .venv && .venv\Scripts\pip install torch==2.13.0 -e ".[installer]"
;   .venv\Scripts\pyinstaller --noconfirm --distpath dist --workpath build\pyinstaller installer\xiaoer.spec
;   "C:\Program Files (x86)\Inno Setup 6\ISCC.exe" installer\windows\xiaoer.iss
;
; (torch is only needed for FLAVOUR=full; llama-cpp-python needs a C++ compiler, e.g. the Visual
; Studio Build Tools, unless a prebuilt wheel matches.) Output: dist\xiaoer-setup-0.1.0.exe.
;
; Upgrades: the AppId below never changes, so a newer setup replaces the program files in place.
; The user's data (database, adapters, settings, models) is in %LOCALAPPDATA%\xiaoer\xiaoer
; (platformdirs), outside {app}: neither an upgrade nor the uninstaller touches it, and a newer
; database schema migrates, after a backup, on the first start of the new version.

#define AppVersion "0.1.0"

[Setup]
AppId={{6B1C2E0F-5A8D-4C3B-9E1F-7D2A4B6C8E10}
AppName=Xiaoer
AppVerName=Xiaoer {#AppVersion}
AppVersion={#AppVersion}
AppPublisher=Xiaoer
DefaultDirName={autopf}\Xiaoer
DefaultGroupName=Xiaoer
; Per-user install by default (no admin rights needed); the dialog offers all users.
PrivilegesRequired=lowest
PrivilegesRequiredOverridesAllowed=dialog
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
OutputDir=..\..\dist
OutputBaseFilename=xiaoer-setup-{#AppVersion}
SetupIconFile=..\xiaoer.ico
UninstallDisplayIcon={app}\xiaoer.exe
Compression=lzma2/normal
SolidCompression=no
WizardStyle=modern
CloseApplications=yes

[Languages]
Name: "en"; MessagesFile: "compiler:Default.isl"
Name: "zh"; MessagesFile: "compiler:Languages\ChineseSimplified.isl"

[Tasks]
Name: "desktopicon"; Description: "{cm:CreateDesktopIcon}"; GroupDescription: "{cm:AdditionalIcons}"

[InstallDelete]
; An upgrade must not leave modules of the old version beside the new ones.
Type: filesandordirs; Name: "{app}\_internal"

[Files]
Source: "..\..\dist\xiaoer\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs

[Icons]
Name: "{group}\Xiaoer"; Filename: "{app}\xiaoer.exe"
Name: "{group}\{cm:UninstallProgram,Xiaoer}"; Filename: "{uninstallexe}"
Name: "{autodesktop}\Xiaoer"; Filename: "{app}\xiaoer.exe"; Tasks: desktopicon

[Run]
Filename: "{app}\xiaoer.exe"; Description: "{cm:LaunchProgram,Xiaoer}"; Flags: nowait postinstall skipifsilent
