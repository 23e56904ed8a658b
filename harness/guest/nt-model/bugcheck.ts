// What the NT DMA model prints when the driver breaks a DMA rule, as Driver Verifier would bug-check:
//   MODEL BUGCHECK rule=<rule> ddi=<DDI> caller=<hex RVA> :: <message>
// The caller is an address in the model's exe; callSite() names the driver's source line for it.
import { execa } from 'execa';

export interface ModelBugcheck {
  rule: string;
  ddi: string;
  /** RVA of the driver's call in the model exe. */
  caller: number;
  message: string;
  line: string;
}

const BUGCHECK = /^MODEL BUGCHECK rule=(\S+) ddi=(\S+) caller=(?:0x)?([0-9a-fA-F]+) :: (.*)$/;

export function parseBugcheck(line: string): ModelBugcheck | undefined {
  const m = BUGCHECK.exec(line.trim());
  if (!m) return undefined;
  return { rule: m[1]!, ddi: m[2]!, caller: parseInt(m[3]!, 16), message: m[4]!, line: line.trim() };
}

/** file:line of an RVA in a PE built with -g (x86_64-w64-mingw32-addr2line); undefined when it cannot tell. */
export async function callSite(exe: string, imageBase: number, rva: number): Promise<string | undefined> {
  const r = await execa('x86_64-w64-mingw32-addr2line', ['-e', exe, '-f', '-s', '0x' + (imageBase + rva).toString(16)], { reject: false });
  if (r.exitCode !== 0) return undefined;
  const [fn, where] = r.stdout.split('\n');
  return where && !where.startsWith('??') ? `${fn} (${where})` : undefined;
}
