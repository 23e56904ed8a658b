#!/usr/bin/env bash
# Install what dmahil needs on Debian 12 or 13: Debian packages (as root, or through sudo) and npm packages.
#   scripts/install-deps.sh run    what `make run` needs: QEMU and the reference guest's packages
#   scripts/install-deps.sh test   also the Windows driver toolchain and checks (mingw-w64, Wine, osslsigncode)
# Installs only what is missing; fails with a message naming the packages and the command when it cannot.
set -euo pipefail

purpose=${1:-run}
run_pkgs=(
  qemu-system-x86 qemu-utils            # the machine
  linux-image-amd64 linux-headers-amd64 # the reference guest's kernel, and headers to build edudma against it
  busybox-static dropbear-bin           # the reference guest's userland and SSH server
  openssh-sftp-server                   # SFTP inside the guest (driver upload)
  build-essential kmod cpio xz-utils    # building edudma and dmactl, unpacking the kernel
  zstd                                  # unpacking Debian 13's zstd-compressed kernel and modules
  openssl                               # keys
  socat                                 # reaching a kept guest's QMP socket, as --keep and dmahil shell print
)
test_pkgs=(
  gcc-mingw-w64-x86-64-win32 gcc-mingw-w64-i686-win32   # the Windows driver
  osslsigncode                          # test-signing the Windows package
  wine wine64                           # loading the Windows driver without Windows: wine64 only Recommends
                                        # wine, which has the wine and wineserver commands
  openssh-server                        # the SSH channel against a real sshd on loopback
  xorriso ovmf libxml2-utils            # Windows images: the config ISO, UEFI without Secure Boot keys, checking autounattend.xml
  chromium                              # rendering the HTML report in specs (playwright-core drives it; no browser download)
)
case "$purpose" in
  run) pkgs=("${run_pkgs[@]}") ;;
  test) pkgs=("${run_pkgs[@]}" "${test_pkgs[@]}") ;;
  *) echo "usage: $0 run|test" >&2; exit 2 ;;
esac

die() { echo "dmahil: $*" >&2; exit 1; }

[ -r /etc/debian_version ] || die "this is not a Debian system; install the equivalents of: ${pkgs[*]}"

node_major=$(node -p 'process.versions.node.split(".").map(Number).slice(0,2).join(" ")' 2>/dev/null || echo "0 0")
read -r major minor <<<"$node_major"
if [ "$major" -lt 20 ] || { [ "$major" -eq 20 ] && [ "$minor" -lt 19 ]; }; then
  die "Node.js 20.19 or newer is needed (found $(node --version 2>/dev/null || echo none)); install it from your distribution or nodejs.org"
fi

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done

if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then
    sudo=()
  elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    sudo=(sudo)
  else
    die "missing Debian packages: ${missing[*]}. Run as root or with passwordless sudo, or install them: sudo apt-get install -y ${missing[*]}"
  fi
  echo "dmahil: installing Debian packages: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get update -q || die "apt-get update failed; check the network and /etc/apt/sources.list"
  "${sudo[@]}" apt-get install -y -q --no-install-recommends -o DPkg::Lock::Timeout=900 "${missing[@]}" \
    || die "apt-get install failed for: ${missing[*]}"
fi

# The kernel the guest boots (the one linux-image-amd64 points at) needs matching headers: edudma is built against them.
kver=$(dpkg-query -W -f='${Depends}' linux-image-amd64 | grep -o 'linux-image-[^ ,]*' | head -n 1 | sed 's/^linux-image-//')
[ -n "$kver" ] || die "cannot tell which kernel linux-image-amd64 installs; reinstall it: apt-get install --reinstall linux-image-amd64"
[ -d "/lib/modules/$kver/build" ] || die "no headers for the guest kernel $kver; install them: apt-get install -y linux-headers-$kver"
