# dmahil: the two commands a user needs are `make run` and `make test` (see README.md).
# Everything else is a step they depend on.

SHELL := /bin/bash
NODE_MODULES_STAMP := node_modules/.package-lock.json
MOCHA := node_modules/.bin/mocha
TSC := node_modules/.bin/tsc

.PHONY: run test deps-run deps-test build driver driver-linux bench clean help
.DEFAULT_GOAL := help

help:
	@echo "make run     boot the reference guest, run the DMA scenarios, print the verdict"
	@echo "make test    run the whole test suite (writes reports/junit.xml)"
	@echo "make driver  build the Windows driver package (build/windows/{x64,x86})"
	@echo "make bench   run the benchmarks (writes reports/bench.json)"

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

run: deps-run build
	node dist/harness/cli/main.js run $(ARGS)

test: deps-test build driver-linux driver
	@mkdir -p reports
	$(MOCHA) $(MOCHA_ARGS)

bench: deps-run build
	node dist/bench/run.js

include guest-driver/linux/linux.mk
include guest-driver/windows/windows.mk

clean:
	rm -rf dist build reports
