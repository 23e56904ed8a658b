// The contract a driver folder's binaries declare, read on the host without booting or running them:
// edudma.ko's MODULE_INFO(dmahil_contract, ...) and dmactl's "dmahil_contract=N" string (dmahil_abi.h).

/** The version in the first NUL-terminated "dmahil_contract=N" string of a binary, if any. */
export function contractTag(buf: Buffer): number | undefined {
  const m = /dmahil_contract=(\d{1,9})\0/.exec(buf.toString('latin1'));
  return m ? Number(m[1]) : undefined;
}
