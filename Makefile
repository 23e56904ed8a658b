# dmahil: the two commands a user needs are `make run` and `make test` (see README.md).
# Everything else is a step they depend on.

SHELL := /bin/bash
NODE_MODULES_STAMP := node_modules/.package-lock.json
MOCHA := node_modules/.bin/mocha
TSC := node_modules/.bin/tsc

.PHONY: run test test-installed deps-run deps-test build driver driver-linux bench clean help windows-image
.DEFAULT_GOAL := help

help:
	@echo "make run     boot the reference guest, run the DMA scenarios, print the verdict"
	@echo "make test    run the whole test suite (writes reports/junit.xml)"
	@echo "make driver  build the Windows driver package (build/windows/{x64,x86})"
	@echo "make bench   run the benchmarks (writes reports/bench.json)"
	@echo "make windows-image ISO=path/to/windows.iso   build a Windows golden image (docs/windows.md)"

# Debian packages (when root or with sudo); npm packages come with the node_modules rule below.
deps-run:
	@scripts/install-deps.sh run

deps-test:
	@scripts/install-deps.sh test

$(NODE_MODULES_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

build: $(NODE_MODULES_STAMP)
	$(TSC) -p tsconfig.json

# make reports any failing recipe as 2, so the CLI's own status (1: a scenario did not verify) is printed
# last; scripts/dmahil run returns it as the exit status.
run: deps-run build
	@node dist/harness/cli/main.js run $(ARGS); rc=$$?; \
	  case $$rc in 0) ;; 1) echo "dmahil: exit status 1: a scenario did not verify (scripts/dmahil run returns this status)" >&2;; \
	  *) echo "dmahil: exit status $$rc: bad input or a missing tool (scripts/dmahil run returns this status)" >&2;; esac; exit $$rc

# The rest runs in a second make: linux.mk picks the kernel (KVER) from the headers installed when make
# starts, and on a fresh machine deps-test is what installs them.
test: deps-test
	@$(MAKE) --no-print-directory test-installed

test-installed: build driver-linux driver
	@mkdir -p reports
	$(MOCHA) $(MOCHA_ARGS)

bench: deps-run build
	node dist/bench/run.js

include guest-driver/linux/linux.mk
include guest-driver/windows/windows.mk

# A Windows golden image, unattended (docs/windows.md): make windows-image ISO=path/to/windows.iso [OUT=...] [ARGS=...]
windows-image: build
	@test -n "$(ISO)" || { echo "make windows-image: pass the Windows ISO: make windows-image ISO=path/to/windows.iso (see docs/windows.md)" >&2; exit 2; }
	@command -v xorriso >/dev/null || { echo "make windows-image: xorriso is missing: apt-get install -y xorriso ovmf" >&2; exit 2; }
	node dist/images/windows/cli.js windows --iso "$(ISO)" $(if $(OUT),--out "$(OUT)") $(ARGS)

clean:
	rm -rf dist build reports
