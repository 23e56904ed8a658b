// dmahil run --driver DIR for the reference guest: DIR holds a prebuilt edudma.ko and its dmactl. Both are
// checked on the host before anything boots: their kinds, the contract each declares, and the kernel the
// module was built for, each refusal one line naming --driver, what was found and the fix.
import fs from 'node:fs';
import path from 'node:path';
import { CONTRACT_VERSION } from '../contract/scenario.js';
import { UsageError } from '../errors.js';
import { contractTag } from './contract-tag.js';
import { EM_X86_64, ET_DYN, ET_EXEC, ET_REL, modinfo, readElf, type ElfFile } from './elf.js';

export const LINUX_DRIVER_FILES = { module: 'edudma.ko', tool: 'dmactl' } as const;

export interface LinuxDriver {
  dir: string;
  module: string;
  tool: string;
  /** The contract both declare (equal to CONTRACT_VERSION, or the folder was refused). */
  contract: number;
  /** The module's vermagic, e.g. "6.1.0-57-amd64 SMP preempt mod_unload modversions ". */
  vermagic: string;
}

const BUILD_HINT = 'build both from guest-driver/linux (make -C guest-driver/linux KVER=<the guest kernel> puts edudma.ko and dmactl in build/linux/) and pass that folder';
const speaks = `this dmahil speaks contract ${CONTRACT_VERSION} (CONTRACT_VERSION in harness/contract/scenario.ts, DMAHIL_CONTRACT_VERSION in guest-driver/common/dmahil_abi.h)`;
const contractHint = (found: number): string =>
  `rebuild the driver against this dmahil's guest-driver/common/dmahil_abi.h (contract ${CONTRACT_VERSION}), or run it with the dmahil release that speaks contract ${found}`;

/** Read one file of the folder as the kind it must be; a UsageError naming --driver otherwise. */
function readElfFile(file: string, kind: string): { buf: Buffer; elf: ElfFile } {
  let buf: Buffer;
  try {
    if (!fs.statSync(file).isFile()) throw new UsageError(`--driver: ${file} is not a file`, { hint: BUILD_HINT });
    buf = fs.readFileSync(file);
  } catch (e) {
    if (e instanceof UsageError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    const windows = code === 'ENOENT' && fs.existsSync(path.join(path.dirname(file), 'edudma.sys'));
    throw new UsageError(`--driver: ${code === 'ENOENT' ? `the folder has no ${path.basename(file)}` : `cannot read ${file} (${code ?? e})`} (${path.dirname(file)})`, {
      hint: windows ? 'it holds edudma.sys, a Windows package: add --image windows (a golden image) to test it' : BUILD_HINT,
    });
  }
  const elf = readElf(buf);
  if (typeof elf === 'string') throw new UsageError(`--driver: ${file} is not ${kind}: ${elf}`, { hint: BUILD_HINT });
  if (elf.machine !== EM_X86_64) throw new UsageError(`--driver: ${file} is not ${kind}: built for ELF machine ${elf.machine}, not x86-64 (62)`, { hint: BUILD_HINT });
  return { buf, elf };
}

/** The folder's module and tool, checked; throws a UsageError for the first problem. */
export function checkLinuxDriver(dir: string): LinuxDriver {
  const module = path.join(dir, LINUX_DRIVER_FILES.module);
  const tool = path.join(dir, LINUX_DRIVER_FILES.tool);
  const ko = readElfFile(module, 'a Linux kernel module');
  if (ko.elf.type !== ET_REL) throw new UsageError(`--driver: ${module} is not a Linux kernel module (ELF type ${ko.elf.type}, a module is relocatable, type ${ET_REL})`, { hint: BUILD_HINT });
  const info = modinfo(ko.elf);
  const declared = info.get('dmahil_contract')?.[0];
  if (declared === undefined) {
    throw new UsageError(`--driver: ${module} declares no dmahil contract (no dmahil_contract in its .modinfo), so it does not speak the contract; ${speaks}`, {
      hint: 'build it from guest-driver/linux of this dmahil, or give your module MODULE_INFO(dmahil_contract, DMAHIL_CONTRACT_TEXT) from dmahil_abi.h',
    });
  }
  const contract = /^\d+$/.test(declared) ? Number(declared) : NaN;
  if (contract !== CONTRACT_VERSION) throw new UsageError(`--driver: ${module} speaks contract ${JSON.stringify(declared)}; ${speaks}`, { hint: contractHint(contract) });
  const vermagic = info.get('vermagic')?.[0];
  if (!vermagic) throw new UsageError(`--driver: ${module} has no vermagic in its .modinfo, so no kernel would load it`, { hint: BUILD_HINT });

  const ctl = readElfFile(tool, 'a Linux x86-64 program');
  if (ctl.elf.type !== ET_EXEC && ctl.elf.type !== ET_DYN) throw new UsageError(`--driver: ${tool} is not a program (ELF type ${ctl.elf.type})`, { hint: BUILD_HINT });
  if (ctl.elf.interpreter !== undefined) {
    throw new UsageError(`--driver: ${tool} is dynamically linked (it needs ${ctl.elf.interpreter}), and the reference guest has no C library`, { hint: 'link it with -static, as guest-driver/linux/linux.mk does' });
  }
  const toolContract = contractTag(ctl.buf);
  if (toolContract === undefined) {
    throw new UsageError(`--driver: ${tool} declares no dmahil contract (no "dmahil_contract=N" string in it), so it does not speak the contract; ${speaks}`, {
      hint: 'build it from guest-driver/common/dmactl of this dmahil (its contract_tag carries the version)',
    });
  }
  if (toolContract !== CONTRACT_VERSION) throw new UsageError(`--driver: ${tool} speaks contract ${toolContract}; ${speaks}`, { hint: contractHint(toolContract) });
  return { dir, module, tool, contract, vermagic };
}

/** The kernel a vermagic names: its first word ("6.1.0-57-amd64 SMP preempt ..." → "6.1.0-57-amd64"). */
export function vermagicKernel(vermagic: string): string {
  return vermagic.trim().split(/\s+/)[0] ?? '';
}

/** A module built for another kernel than the guest's is the commonest mistake: refuse it before boot. */
export function checkModuleKernel(driver: LinuxDriver, guestKernel: string): void {
  const builtFor = vermagicKernel(driver.vermagic);
  if (builtFor === guestKernel) return;
  throw new UsageError(`--driver: ${driver.module} was built for kernel ${builtFor} (vermagic "${driver.vermagic.trim()}"), but the reference guest runs ${guestKernel}`, {
    hint: `rebuild it against linux-headers-${guestKernel}: make -C <your copy of guest-driver/linux> KVER=${guestKernel}`,
  });
}
