; NOT VERIFIED HERE: written on Linux, never compiled or installed on Windows.
; .github/workflows/bundles.yml builds it on windows-latest; check the result
; on a real Windows machine before publishing it.
;
; Inno Setup 6 script: a Windows installer over the one-folder build.
;
;   pyinstaller --noconfirm packaging\nerve.spec      (makes dist\nerve\)
;   iscc /DAppVersion=0.1.0 packaging\windows\nerve.iss
;
; Result: dist\Nerve-<version>-setup.exe. Installs per user by default (no
; administrator needed), or for all users when started as administrator.

#ifndef AppVersion
  #define AppVersion "0.0.0"
#endif
#define Root "..\.."

[Setup]
AppId={{6F1C2B1E-9D4A-4C61-9E0B-2B6D3F4E8A17}
AppName=Nerve
AppVersion={#AppVersion}
AppVerName=Nerve {#AppVersion}
AppPublisher=The Nerve developers
DefaultDirName={autopf}\Nerve
DefaultGroupName=Nerve
DisableProgramGroupPage=yes
PrivilegesRequired=lowest
PrivilegesRequiredOverridesAllowed=dialog
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
OutputDir={#Root}\dist
OutputBaseFilename=Nerve-{#AppVersion}-setup
SetupIconFile=nerve.ico
UninstallDisplayIcon={app}\nervew.exe
LicenseFile={#Root}\LICENSE
Compression=lzma2/max
SolidCompression=yes
WizardStyle=modern
ChangesEnvironment=yes
; A running Nerve holds its files open: ask it to close (Restart Manager).
CloseApplications=yes
RestartApplications=no

[Tasks]
Name: "desktopicon"; Description: "{cm:CreateDesktopIcon}"; GroupDescription: "{cm:AdditionalIcons}"; Flags: unchecked
Name: "autostart"; Description: "Start Nerve when I sign in"; GroupDescription: "Start:"; Flags: unchecked
Name: "addtopath"; Description: "Add the nerve command to PATH (nerve status, nerve validate...)"; GroupDescription: "Command line:"

[Files]
Source: "{#Root}\dist\nerve\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs

[Icons]
Name: "{autoprograms}\Nerve"; Filename: "{app}\nervew.exe"; WorkingDir: "{app}"
Name: "{autodesktop}\Nerve"; Filename: "{app}\nervew.exe"; WorkingDir: "{app}"; Tasks: desktopicon
Name: "{userstartup}\Nerve"; Filename: "{app}\nervew.exe"; WorkingDir: "{app}"; Tasks: autostart

[Registry]
; Per-user PATH entry (HKCU); an all-users install still only changes the
; installing user's PATH, which keeps this script free of admin-only keys.
Root: HKCU; Subkey: "Environment"; ValueType: expandsz; ValueName: "Path"; \
  ValueData: "{olddata};{app}"; Tasks: addtopath; Check: NeedsAddPath(ExpandConstant('{app}'))

[Run]
Filename: "{app}\nervew.exe"; Description: "{cm:LaunchProgram,Nerve}"; Flags: nowait postinstall skipifsilent

[UninstallRun]
; Stop a running Nerve (desktop or headless) before its files go. Nerve has no
; `nerve quit` command yet; when it does, run that instead.
Filename: "{sys}\taskkill.exe"; Parameters: "/IM nervew.exe /IM nerve.exe"; Flags: runhidden; RunOnceId: "StopNerve"

[Code]
function NeedsAddPath(Dir: string): Boolean;
var
  Paths: string;
begin
  if not RegQueryStringValue(HKEY_CURRENT_USER, 'Environment', 'Path', Paths) then
  begin
    Result := True;
    exit;
  end;
  Result := Pos(';' + Uppercase(Dir) + ';', ';' + Uppercase(Paths) + ';') = 0;
end;

procedure CurUninstallStepChanged(CurUninstallStep: TUninstallStep);
var
  Paths: string;
  Dir: string;
  P: Integer;
begin
  if CurUninstallStep <> usPostUninstall then
    exit;
  if not RegQueryStringValue(HKEY_CURRENT_USER, 'Environment', 'Path', Paths) then
    exit;
  Dir := ExpandConstant('{app}');
  P := Pos(';' + Uppercase(Dir), Uppercase(Paths));
  if P > 0 then
  begin
    Delete(Paths, P, Length(Dir) + 1);
    RegWriteExpandStringValue(HKEY_CURRENT_USER, 'Environment', 'Path', Paths);
  end;
end;
