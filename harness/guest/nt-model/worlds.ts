// The worlds the NT DMA model runs the Windows driver in (guest-driver/windows/model/README.md). Each is
// a HAL the driver may meet on a real Windows guest; the catalog runs in every one.
export type NtModelWorldId = 'map-registers' | 'direct' | 'v2-null-flush';

export interface NtModelWorld {
  id: NtModelWorldId;
  description: string;
  /**
   * Which catalog guest this world stands for: 'bounce' when every mapping goes through map registers
   * (the report-consistency rules then expect bounced pages), 'direct' when device addresses are CPU pages.
   */
  catalogVariant: 'direct' | 'bounce';
  /** The edu's DMA address width in this world (28: QEMU's default; 32: what a v2 guest needs, edu,dma_mask). */
  eduDmaBits: number;
}

export const NT_MODEL_WORLDS: Record<NtModelWorldId, NtModelWorld> = {
  'map-registers': {
    id: 'map-registers',
    description: 'DMA v3, 28-bit device, buffers above 256 MiB: every mapping uses map registers (bounce pages)',
    catalogVariant: 'bounce',
    eduDmaBits: 28,
  },
  direct: {
    id: 'direct',
    description: 'DMA v3, 28-bit device (the driver always declares 28 bits), all memory below 256 MiB: device addresses are the CPU pages, no map registers',
    catalogVariant: 'direct',
    eduDmaBits: 28,
  },
  'v2-null-flush': {
    id: 'v2-null-flush',
    description: 'ReactOS-like HAL: v3 refused, v2 granted, DmaOperations->Size covers FlushDmaBuffer but it is NULL',
    catalogVariant: 'direct',
    eduDmaBits: 32,
  },
};

/** Guest RAM of a model run: a sparse file, physical address = file offset. */
export const NT_MODEL_RAM_BYTES = 512 * 1024 * 1024;
