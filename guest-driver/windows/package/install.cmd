@echo off
rem Install the dmahil EduDma test driver in a Windows guest with test signing on (Windows 7 to 11).
rem Run from this folder in an elevated command prompt. See guest-driver/windows/README.md.
rem This file must keep CRLF line endings: cmd.exe misreads labels and blocks in LF-only batch files.
setlocal EnableExtensions
cd /d "%~dp0"

rem 64-bit Windows runs a 32-bit cmd.exe with System32 redirected to SysWOW64, which has no pnputil.exe.
set "SYS=%SystemRoot%\System32"
if exist "%SystemRoot%\Sysnative\pnputil.exe" set "SYS=%SystemRoot%\Sysnative"

rem Elevation: fltmc answers only an elevated administrator (every language, Windows 7 and later).
"%SYS%\fltmc.exe" >nul 2>&1
if errorlevel 1 goto not_elevated

rem Test signing as the running kernel applied it: SystemStartOptions holds this boot's options. Unlike
rem bcdedit's output (the boot store for the next boot, its "Yes" translated) it does not depend on the
rem display language. Plain cmd, no findstr: the value is matched as a whole option between spaces.
set "OPTS= none "
for /f "tokens=1,2,*" %%a in ('%SYS%\reg.exe query "HKLM\SYSTEM\CurrentControlSet\Control" /v SystemStartOptions 2^>nul') do if /i "%%a"=="SystemStartOptions" set "OPTS= %%c "
if /i "%OPTS: TESTSIGNING =%"=="%OPTS%" goto no_testsigning

"%SYS%\certutil.exe" -f -addstore Root edudma-test.cer
if errorlevel 1 goto certutil_failed
"%SYS%\certutil.exe" -f -addstore TrustedPublisher edudma-test.cer
if errorlevel 1 goto certutil_failed

rem pnputil /add-driver ... /install exists from Windows 10 1607 (build 14393); older pnputil (Windows 7,
rem 8, 8.1, 10 before 1607) takes -i -a. The build number comes from the registry, in every language.
set "BUILD=0"
for /f "tokens=1,2,*" %%a in ('%SYS%\reg.exe query "HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion" /v CurrentBuildNumber 2^>nul') do if /i "%%a"=="CurrentBuildNumber" set "BUILD=%%c"
if %BUILD% LSS 14393 goto old_pnputil
echo install.cmd: pnputil /add-driver edudma.inf /install
"%SYS%\pnputil.exe" /add-driver edudma.inf /install
goto pnputil_done
:old_pnputil
echo install.cmd: pnputil -i -a edudma.inf (Windows build %BUILD%, before Windows 10 1607)
"%SYS%\pnputil.exe" -i -a edudma.inf
:pnputil_done
set "RC=%ERRORLEVEL%"
rem 0 installed; 3010 installed, reboot to finish; 259 added, but no device was updated (already installed).
if "%RC%"=="3010" echo install.cmd: installed; Windows asks for a reboot to finish.
if "%RC%"=="259" echo install.cmd: the package was added but no device was updated: already installed, or no edu device: QEMU needs -device edu.
if not "%RC%"=="0" if not "%RC%"=="3010" if not "%RC%"=="259" goto pnputil_failed

dmactl.exe info
exit /b %ERRORLEVEL%

:not_elevated
echo install.cmd: this needs an elevated command prompt: right-click Command Prompt, "Run as administrator", then run install.cmd again. 1>&2
exit /b 1
:no_testsigning
echo install.cmd: test signing is off in the running Windows ^(SystemStartOptions:%OPTS%^). 1>&2
echo Run: bcdedit /set testsigning on   then reboot ^(Secure Boot must be off^), and run install.cmd again. 1>&2
exit /b 1
:certutil_failed
echo install.cmd: certutil could not add edudma-test.cer to the LocalMachine Root and TrustedPublisher stores. 1>&2
exit /b 1
:pnputil_failed
echo install.cmd: pnputil failed with exit code %RC%: see %SystemRoot%\INF\setupapi.dev.log 1>&2
exit /b %RC%
