# The NT kernel/HAL DMA model that runs the Windows driver's own sources (guest-driver/windows/model/README.md).
# Included by guest-driver/windows/windows.mk.
#
#   make windows-model     build/windows/model/edudma-model.exe: dmactl with its Windows backend + the driver's
#                          src/*.c + the model
#
# MODEL_DRV_SRC and MODEL_OUT let a copy of the guest-driver tree (a mutated driver) build into another
# directory: make windows-model MODEL_DRV_SRC=/tmp/x/guest-driver/windows/src MODEL_OUT=/tmp/x/out
# Warnings are errors. The driver's files get the flags of windows.mk, with -g, plus three that keep
# them unchanged in user mode: -include mk_forced.h (IRQL through the model, not CR8) and
# -Dmemcpy/-Dmemset (ntoskrnl's memcpy and memset are the model's, as every other import).

MODEL_DIR     := guest-driver/windows/model
MODEL_DRV_SRC ?= guest-driver/windows/src
MODEL_OUT     ?= build/windows/model
MODEL_CC      := x86_64-w64-mingw32-gcc
MODEL_DDK     := /usr/share/mingw-w64/include/ddk
MODEL_DMACTL  := guest-driver/common/dmactl

MODEL_KFLAGS := -std=gnu11 -O2 -g -Wall -Wextra -Werror -Wno-multichar -fno-stack-protector -mno-stack-arg-probe \
                -fno-strict-aliasing -fno-builtin-printf -mno-red-zone -I$(MODEL_DDK) -D_KERNEL_MODE=1 \
                -include $(MODEL_DIR)/mk_forced.h
MODEL_DRV_FLAGS := $(MODEL_KFLAGS) -Wframe-larger-than=1024 -Dmemcpy=mk_memcpy -Dmemset=mk_memset
MODEL_UFLAGS := -std=gnu11 -O2 -g -Wall -Wextra -Werror

MODEL_DRV_C   := $(wildcard $(MODEL_DRV_SRC)/*.c)
MODEL_DRV_H   := $(wildcard $(MODEL_DRV_SRC)/*.h) $(MODEL_DRV_SRC)/../edudma_ioctl.h $(wildcard $(MODEL_DRV_SRC)/../../common/*.h)
MODEL_K_C     := $(filter-out $(MODEL_DIR)/os.c $(MODEL_DIR)/main.c,$(wildcard $(MODEL_DIR)/*.c))
MODEL_K_H     := $(wildcard $(MODEL_DIR)/*.h) $(wildcard guest-driver/common/*.h) $(MODEL_DMACTL)/backend.h \
                 guest-driver/windows/edudma_ioctl.h
MODEL_OBJS    := $(patsubst $(MODEL_DRV_SRC)/%.c,$(MODEL_OUT)/drv/%.o,$(MODEL_DRV_C)) \
                 $(patsubst $(MODEL_DIR)/%.c,$(MODEL_OUT)/model/%.o,$(MODEL_K_C)) \
                 $(MODEL_OUT)/model/os.o $(MODEL_OUT)/model/main.o $(MODEL_OUT)/dmactl/dmactl.o \
                 $(MODEL_OUT)/dmactl/backend_windows.o

.PHONY: windows-model

windows-model: $(MODEL_OUT)/edudma-model.exe

$(MODEL_OUT)/drv/%.o: $(MODEL_DRV_SRC)/%.c $(MODEL_DRV_H) $(MODEL_DIR)/mk_forced.h
	@mkdir -p $(@D)
	$(MODEL_CC) $(MODEL_DRV_FLAGS) -c -o $@ $<

$(MODEL_OUT)/model/os.o $(MODEL_OUT)/model/main.o: $(MODEL_OUT)/model/%.o: $(MODEL_DIR)/%.c $(MODEL_DIR)/os.h
	@mkdir -p $(@D)
	$(MODEL_CC) $(MODEL_UFLAGS) -c -o $@ $<

$(MODEL_OUT)/model/%.o: $(MODEL_DIR)/%.c $(MODEL_K_H)
	@mkdir -p $(@D)
	$(MODEL_CC) $(MODEL_KFLAGS) -c -o $@ $<

# dmactl unchanged: its main becomes dmactl_main, so main.c can take "model-check" first.
$(MODEL_OUT)/dmactl/dmactl.o: $(MODEL_DMACTL)/dmactl.c $(MODEL_DMACTL)/backend.h $(wildcard guest-driver/common/*.h)
	@mkdir -p $(@D)
	$(MODEL_CC) -std=c11 -O2 -g -Wall -Wextra -Werror -Dmain=dmactl_main -c -o $@ $<

# dmactl's Windows backend unchanged: its four Win32 calls go to the model (backend_model.c).
$(MODEL_OUT)/dmactl/backend_windows.o: $(MODEL_DMACTL)/backend_windows.c $(MODEL_DMACTL)/backend.h \
    guest-driver/windows/edudma_ioctl.h $(wildcard guest-driver/common/*.h)
	@mkdir -p $(@D)
	$(MODEL_CC) -std=c11 -O2 -g -Wall -Wextra -Werror -DCreateFileA=mk_CreateFileA -DDeviceIoControl=mk_DeviceIoControl \
	  -DCloseHandle=mk_CloseHandle -DGetLastError=mk_GetLastError -c -o $@ $<

$(MODEL_OUT)/edudma-model.exe: $(MODEL_OBJS)
	$(MODEL_CC) -g -static -o $@ $^ -Wl,--image-base,0x140000000
