# guest-driver/linux/linux.mk: the Linux guest side, built on the host.
#   driver-linux   build/linux/edudma.ko (against /lib/modules/$(KVER)/build) and build/linux/dmactl (static)
# Included by the top-level Makefile (DMAHIL_ROOT = the repo root) and by guest-driver/linux/Makefile.
# KVER defaults to the newest kernel in /lib/modules that has a build directory (its headers).

DMAHIL_ROOT ?= $(CURDIR)
LINUX_SRC := $(DMAHIL_ROOT)/guest-driver/linux
LINUX_COMMON := $(DMAHIL_ROOT)/guest-driver/common
LINUX_OUT := $(DMAHIL_ROOT)/build/linux

ifeq ($(origin KVER),undefined)
KVER := $(shell for d in /lib/modules/*/build; do [ -e "$$d/Makefile" ] && basename "$${d%/build}"; done | sort -V | tail -n 1)
endif
KDIR ?= /lib/modules/$(KVER)/build

EDUDMA_OBJDIR := $(LINUX_OUT)/kmod-$(KVER)
EDUDMA_DEPS := $(LINUX_SRC)/edudma.c $(LINUX_SRC)/edudma_compat.h $(LINUX_SRC)/edudma_ioctl.h $(LINUX_SRC)/Kbuild \
	$(LINUX_SRC)/edudma_planted.h \
	$(LINUX_COMMON)/dmahil_abi.h $(LINUX_COMMON)/dmahil_types.h $(LINUX_COMMON)/dmahil_pattern.h

DMACTL_SRCS := $(LINUX_COMMON)/dmactl/dmactl.c $(LINUX_COMMON)/dmactl/backend_linux.c
DMACTL_DEPS := $(DMACTL_SRCS) $(LINUX_COMMON)/dmactl/backend.h $(LINUX_SRC)/edudma_ioctl.h \
	$(LINUX_COMMON)/dmahil_abi.h $(LINUX_COMMON)/dmahil_types.h $(LINUX_COMMON)/dmahil_pattern.h
DMACTL_CFLAGS ?= -std=c11 -O2 -Wall -Wextra -Werror

.PHONY: driver-linux edudma-ko edudma-planted dmactl-linux dmactl-lying clean-linux edudma-always
driver-linux: edudma-ko dmactl-linux
edudma-ko: $(LINUX_OUT)/edudma.ko
dmactl-linux: $(LINUX_OUT)/dmactl

$(EDUDMA_OBJDIR)/edudma.ko: $(EDUDMA_DEPS)
	@if [ -z "$(KVER)" ] || [ ! -e "$(KDIR)/Makefile" ]; then \
	  echo "edudma: no kernel headers for '$(or $(KVER),any kernel)' at $(KDIR); install them: apt-get install linux-headers-$(or $(KVER),amd64)" >&2; \
	  exit 1; fi
	@mkdir -p $(@D)
	cp -p $(LINUX_SRC)/Kbuild $(LINUX_SRC)/edudma.c $(@D)/
	$(MAKE) -C $(KDIR) M=$(abspath $(@D)) EDUDMA_INC="$(LINUX_SRC) $(LINUX_COMMON)" modules

# Copied every time KVER may have changed; cmp keeps the timestamp when nothing did.
$(LINUX_OUT)/edudma.ko: $(EDUDMA_OBJDIR)/edudma.ko edudma-always
	@cmp -s $< $@ || cp $< $@

$(LINUX_OUT)/dmactl: $(DMACTL_DEPS)
	@mkdir -p $(@D)
	$(CC) $(DMACTL_CFLAGS) -I$(LINUX_COMMON) -I$(LINUX_SRC) -static -o $@ $(DMACTL_SRCS)

# The test build with lie modes (guest-driver/common/dmactl/lies.c): for the host's specs only, never shipped.
dmactl-lying: $(LINUX_OUT)/dmactl-lying
$(LINUX_OUT)/dmactl-lying: $(DMACTL_DEPS) $(LINUX_COMMON)/dmactl/lies.c $(LINUX_COMMON)/dmactl/lies.h
	@mkdir -p $(@D)
	$(CC) $(DMACTL_CFLAGS) -DDMACTL_LIES -I$(LINUX_COMMON) -I$(LINUX_SRC) -static -o $@ $(DMACTL_SRCS) $(LINUX_COMMON)/dmactl/lies.c

# The test build with planted coherency bugs (edudma_planted.h, chosen by the module parameter "planted"):
# for the explorer's specs only, never shipped. Same module name, so it loads where edudma.ko does.
EDUDMA_PLANTED_OBJDIR := $(LINUX_OUT)/kmod-planted-$(KVER)
edudma-planted: $(LINUX_OUT)/edudma-planted.ko
$(EDUDMA_PLANTED_OBJDIR)/edudma.ko: $(EDUDMA_DEPS)
	@if [ -z "$(KVER)" ] || [ ! -e "$(KDIR)/Makefile" ]; then \
	  echo "edudma: no kernel headers for '$(or $(KVER),any kernel)' at $(KDIR); install them: apt-get install linux-headers-$(or $(KVER),amd64)" >&2; \
	  exit 1; fi
	@mkdir -p $(@D)
	cp -p $(LINUX_SRC)/Kbuild $(LINUX_SRC)/edudma.c $(@D)/
	$(MAKE) -C $(KDIR) M=$(abspath $(@D)) EDUDMA_INC="$(LINUX_SRC) $(LINUX_COMMON)" EDUDMA_PLANTED=y modules
$(LINUX_OUT)/edudma-planted.ko: $(EDUDMA_PLANTED_OBJDIR)/edudma.ko edudma-always
	@cmp -s $< $@ || cp $< $@

clean-linux:
	rm -rf $(LINUX_OUT)
