# Windows driver package, built on Linux with Debian's mingw-w64 (included by the top-level Makefile;
# also works alone: make -f guest-driver/windows/windows.mk driver).
#
#   make driver            build/windows/{x64,x86}/: edudma.sys (signed), edudma.inf, edudma.cat (signed),
#                          edudma-test.cer, dmactl.exe, install.cmd (INF and install.cmd with CRLF)
#   make driver-clean      remove build/windows (the test signing key too)
#
# Warnings are errors. Flags and linker traps: shared/reference/wdm-build-notes.md section 4.
# Each .sys is checked (harness/windows-package PE checker) and each signature verified as it is built;
# then each package folder as a whole (pkgcheck: files, PE, INF rules, CRLF line endings).

WIN_SRC      := guest-driver/windows
WIN_OUT      := build/windows
WIN_ARCHES   := x64 x86
WIN_DDK      := /usr/share/mingw-w64/include/ddk
WIN_NODE     ?= node
WIN_TSC      ?= node_modules/.bin/tsc
WIN_TOOLS    := $(WIN_OUT)/tools
WIN_TOOL     := $(WIN_NODE) $(WIN_TOOLS)/harness/windows-package/cli.js
WIN_SIGNDIR  := $(WIN_OUT)/signing
WIN_KEY      := $(WIN_SIGNDIR)/edudma-test.key
WIN_CRT      := $(WIN_SIGNDIR)/edudma-test.crt

WIN_CC_x64   := x86_64-w64-mingw32-gcc
WIN_CC_x86   := i686-w64-mingw32-gcc

WIN_DRV_SRCS := $(wildcard $(WIN_SRC)/src/*.c)
WIN_DRV_HDRS := $(wildcard $(WIN_SRC)/src/*.h) $(WIN_SRC)/edudma_ioctl.h $(wildcard guest-driver/common/*.h)
WIN_CTL_SRCS := guest-driver/common/dmactl/dmactl.c guest-driver/common/dmactl/backend_windows.c
WIN_CTL_HDRS := guest-driver/common/dmactl/backend.h $(WIN_SRC)/edudma_ioctl.h $(wildcard guest-driver/common/*.h)
WIN_TOOL_SRCS := $(wildcard harness/windows-package/*.ts)

WIN_KCFLAGS  := -std=gnu11 -O2 -g0 -Wall -Wextra -Werror -Wno-multichar -Wframe-larger-than=1024 \
                -fno-stack-protector -mno-stack-arg-probe -fno-strict-aliasing -fno-builtin-printf \
                -I$(WIN_DDK) -D_KERNEL_MODE=1
WIN_KCFLAGS_x64 := -mno-red-zone
WIN_KCFLAGS_x86 := -fno-asynchronous-unwind-tables
WIN_KLDFLAGS := -nostdlib -nostartfiles -Wl,--subsystem,native \
                -Wl,--file-alignment,0x200 -Wl,--section-alignment,0x1000 \
                -Wl,--dynamicbase -Wl,--nxcompat -Wl,--wdmdriver \
                -Wl,--major-subsystem-version,6 -Wl,--minor-subsystem-version,1 \
                -Wl,--major-os-version,6 -Wl,--minor-os-version,1 \
                -Wl,--no-insert-timestamp -Wl,--disable-auto-import -Wl,--disable-runtime-pseudo-reloc \
                -Wl,--fatal-warnings -s
WIN_KLDFLAGS_x64 := -Wl,--entry,DriverEntry -Wl,--image-base,0x140000000
# i686: the stdcall entry symbol carries the underscore. No -lgcc: its __udivdi3 drags in .eh_frame.
WIN_KLDFLAGS_x86 := -Wl,--entry,_DriverEntry@8 -Wl,--image-base,0x10000
WIN_KLIBS_x64 := -lntoskrnl -lhal
WIN_KLIBS_x86 := -lntoskrnl -lhal
WIN_UCFLAGS  := -std=c11 -O2 -Wall -Wextra -Werror -s -static -Wl,--no-insert-timestamp -Wl,--fatal-warnings

# tool -> Debian package that provides it
WIN_NEEDS := x86_64-w64-mingw32-gcc:gcc-mingw-w64-x86-64-win32 i686-w64-mingw32-gcc:gcc-mingw-w64-i686-win32 \
             osslsigncode:osslsigncode openssl:openssl $(WIN_NODE):nodejs

.PHONY: driver driver-clean windows-tools-check
.SECONDARY:

driver: $(foreach a,$(WIN_ARCHES),$(addprefix $(WIN_OUT)/$(a)/,edudma.sys edudma.inf edudma.cat edudma-test.cer dmactl.exe install.cmd))
	@for a in $(WIN_ARCHES); do $(WIN_TOOL) pkgcheck --arch $$a --quiet $(WIN_OUT)/$$a || exit 1; done
	@echo "driver: package ready in $(WIN_OUT)/x64 and $(WIN_OUT)/x86 (test-signed; see $(WIN_SRC)/README.md)"

windows-tools-check:
	@missing=""; for need in $(WIN_NEEDS); do tool=$${need%%:*}; pkg=$${need#*:}; \
	  command -v $$tool >/dev/null 2>&1 || missing="$$missing $$pkg"; done; \
	test -f $(WIN_DDK)/ntddk.h || missing="$$missing mingw-w64-common"; \
	if [ -n "$$missing" ]; then \
	  echo "make driver: missing tools; install them with: apt-get install -y$$missing (or: make deps)" >&2; exit 1; fi

ifndef NODE_MODULES_STAMP
NODE_MODULES_STAMP := node_modules/.package-lock.json
$(NODE_MODULES_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@
endif

# The package tools (PE checker, catalog maker), compiled on their own so the build does not
# depend on the rest of the TypeScript tree.
$(WIN_TOOLS)/.stamp: $(WIN_TOOL_SRCS) $(NODE_MODULES_STAMP) | windows-tools-check
	@mkdir -p $(WIN_TOOLS)
	$(WIN_TSC) --outDir $(WIN_TOOLS) --rootDir . --module nodenext --moduleResolution nodenext --target es2022 \
	  --strict --skipLibCheck --types node $(WIN_TOOL_SRCS)
	@touch $@

define WIN_ARCH_RULES
$(WIN_OUT)/obj/$(1)/%.o: $(WIN_SRC)/src/%.c $(WIN_DRV_HDRS) | windows-tools-check
	@mkdir -p $$(@D)
	$(WIN_CC_$(1)) $(WIN_KCFLAGS) $(WIN_KCFLAGS_$(1)) -c -o $$@ $$<

# link, then check the unsigned image
$(WIN_OUT)/obj/$(1)/edudma.sys: $(patsubst $(WIN_SRC)/src/%.c,$(WIN_OUT)/obj/$(1)/%.o,$(WIN_DRV_SRCS)) $(WIN_TOOLS)/.stamp
	$(WIN_CC_$(1)) -o $$@ $$(filter %.o,$$^) $(WIN_KLDFLAGS) $(WIN_KLDFLAGS_$(1)) -Wl,-Map,$$@.map $(WIN_KLIBS_$(1))
	$(WIN_TOOL) pecheck --arch $(1) --quiet $$@

# sign, verify against the test certificate, check again (now with its signature)
$(WIN_OUT)/$(1)/edudma.sys: $(WIN_OUT)/obj/$(1)/edudma.sys $(WIN_KEY) $(WIN_CRT)
	@mkdir -p $$(@D)
	@rm -f $$@
	osslsigncode sign -certs $(WIN_CRT) -key $(WIN_KEY) -h sha256 -n "dmahil EduDma driver" -in $$< -out $$@ >/dev/null
	osslsigncode verify -CAfile $(WIN_CRT) -in $$@ >$$@.verify.log 2>&1 || { cat $$@.verify.log >&2; rm -f $$@; exit 1; }
	$(WIN_TOOL) pecheck --arch $(1) --expect-signed --quiet $$@

# The INF and install.cmd ship with CRLF line endings (cmd.exe misparses LF-only batch files), whatever
# the checkout has; the INF is converted before the catalog hashes it, and checked as shipped.
$(WIN_OUT)/$(1)/edudma.inf: $(WIN_SRC)/edudma.inf $(WIN_TOOLS)/.stamp
	@mkdir -p $$(@D)
	sed -e 's/\r*$$$$/\r/' $$< >$$@.tmp
	$(WIN_TOOL) infcheck --quiet $$@.tmp >/dev/null || { $(WIN_TOOL) infcheck --quiet $$@.tmp; rm -f $$@.tmp; exit 1; }
	mv $$@.tmp $$@

$(WIN_OUT)/$(1)/install.cmd: $(WIN_SRC)/package/install.cmd $(WIN_TOOLS)/.stamp
	@mkdir -p $$(@D)
	sed -e 's/\r*$$$$/\r/' $$< >$$@.tmp
	$(WIN_TOOL) crlfcheck --quiet $$@.tmp >/dev/null || { $(WIN_TOOL) crlfcheck --quiet $$@.tmp; rm -f $$@.tmp; exit 1; }
	mv $$@.tmp $$@

$(WIN_OUT)/$(1)/edudma-test.cer: $(WIN_CRT)
	@mkdir -p $$(@D)
	openssl x509 -in $$< -outform der -out $$@

# catalog over the signed .sys and the INF, signed, then the .sys verified through it
$(WIN_OUT)/$(1)/edudma.cat: $(WIN_OUT)/$(1)/edudma.sys $(WIN_OUT)/$(1)/edudma.inf $(WIN_KEY) $(WIN_CRT) $(WIN_TOOLS)/.stamp
	$(WIN_TOOL) mkcat --out $(WIN_OUT)/obj/$(1)/edudma-unsigned.cat --hwid 'PCI\VEN_1234&DEV_11E8' \
	  $(WIN_OUT)/$(1)/edudma.sys $(WIN_OUT)/$(1)/edudma.inf
	@rm -f $$@
	osslsigncode sign -certs $(WIN_CRT) -key $(WIN_KEY) -h sha256 -in $(WIN_OUT)/obj/$(1)/edudma-unsigned.cat -out $$@ >/dev/null
	osslsigncode verify -CAfile $(WIN_CRT) -catalog $$@ -in $(WIN_OUT)/$(1)/edudma.sys >$$@.verify.log 2>&1 \
	  || { cat $$@.verify.log >&2; rm -f $$@; exit 1; }

$(WIN_OUT)/$(1)/dmactl.exe: $(WIN_CTL_SRCS) $(WIN_CTL_HDRS) | windows-tools-check
	@mkdir -p $$(@D)
	$(WIN_CC_$(1)) $(WIN_UCFLAGS) -o $$@ $(WIN_CTL_SRCS)
endef
$(foreach a,$(WIN_ARCHES),$(eval $(call WIN_ARCH_RULES,$(a))))

# The test signing key and certificate: generated once per build tree, never committed.
$(WIN_KEY) $(WIN_CRT) &: $(WIN_SRC)/signing/codesign.cnf | windows-tools-check
	@mkdir -p $(WIN_SIGNDIR)
	openssl req -x509 -newkey rsa:3072 -sha256 -days 3650 -nodes -keyout $(WIN_KEY) -out $(WIN_CRT) \
	  -config $< 2>/dev/null
	@chmod 600 $(WIN_KEY)

driver-clean:
	rm -rf $(WIN_OUT)
include guest-driver/windows/model/model.mk
