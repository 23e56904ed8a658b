@echo off
rem Install the dmahil EduDma test driver in a Windows guest with test signing on.
rem Run from this folder in an elevated command prompt. See guest-driver/windows/README.md.
setlocal
cd /d "%~dp0"
bcdedit /enum {current} | findstr /i /c:"testsigning" | findstr /i /c:"Yes" >nul
if errorlevel 1 (
  echo Test signing is off. Run: bcdedit /set testsigning on   then reboot ^(Secure Boot must be off^).
  exit /b 1
)
certutil -f -addstore Root edudma-test.cer || exit /b 1
certutil -f -addstore TrustedPublisher edudma-test.cer || exit /b 1
pnputil /add-driver edudma.inf /install || exit /b 1
dmactl.exe info
