// make bench: timings that matter to users, each with a baseline measured in the same run.
// Prints a table and writes reports/bench.json. Targets live here, never in timed tests.
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildReferenceImage, type ReferenceImage } from '../images/linux/build.js';
import { makeRunInitrd } from '../images/linux/run-keys.js';
import { SshChannel } from '../harness/guest/channel/ssh-channel.js';
import { Machine } from '../harness/machine/index.js';
import { openGuestMemory, type GuestMemory } from '../harness/memory/index.js';
import { CHEAP_WAITS, parallelThroughput, restoreSamples, roundTripRate } from './guest-rates.js';
import { kvmVerdict } from '../harness/machine/accel.js';
import { checkQemu } from '../harness/machine/qemu-check.js';
import { requireSetpriv } from '../harness/machine/launch-checks.js';
import { REFERENCE_AUTO_ACCEL } from '../harness/guest/linux/profile.js';
import { benchTable, median, type Metric } from './table.js';
import { catalogRun, exploreRun } from './explore-rates.js';
import { VARIANTS } from '../harness/dma/catalog.js';
import { buildPlantedDriver, PLANTED_BUGS, plantedParams, type PlantedBug } from '../guest-driver/linux/planted.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const artifacts = path.join(repoRoot, 'reports', 'bench');
const BOOTS = Number(process.env.DMAHIL_BENCH_BOOTS ?? 5);
const BASELINE_BOOTS = Number(process.env.DMAHIL_BENCH_BASELINE_BOOTS ?? 3);
const READS = Number(process.env.DMAHIL_BENCH_READS ?? 3);
const PAGE_READS = 200;
const RESTORES = Number(process.env.DMAHIL_BENCH_RESTORES ?? 5);
const ROUND_TRIPS = Number(process.env.DMAHIL_BENCH_ROUND_TRIPS ?? 20);
const PARALLEL_SCENARIOS = Number(process.env.DMAHIL_BENCH_PARALLEL_SCENARIOS ?? 12);
/** Seconds of exploring with the shipped driver, for exploreScenariosPerS. */
const EXPLORE_S = Number(process.env.DMAHIL_BENCH_EXPLORE_S ?? 30);
/** The planted bugs' budget, as in their specs; the seed too. */
const PLANTED_BUDGET_S = 60;
const PLANTED_SEED = 1;
/** Under KVM a 4 KiB round trip waits ~0.2 s of real time for the edu: fewer are enough. */
const KVM_ROUND_TRIPS = Number(process.env.DMAHIL_BENCH_KVM_ROUND_TRIPS ?? 8);

const log = (m: string): void => void process.stderr.write(`[bench] ${m}\n`);

interface BootVariant {
  kernel: string;
  cpuModel?: string;
}

/** Seconds from launching QEMU to a successful SSH login. Leaves the machine running for the caller. */
async function bootToReady(image: ReferenceImage, v: BootVariant, name: string): Promise<{ seconds: number; machine: Machine }> {
  const keyDir = await fs.mkdtemp(path.join(os.tmpdir(), 'dmahil-bench-'));
  try {
    const keys = await makeRunInitrd(image, keyDir);
    const started = performance.now();
    const machine = await Machine.launch(
      { name, memoryMiB: 256, cpus: 1, accel: REFERENCE_AUTO_ACCEL, kernel: v.kernel, initrd: keys.initrd, append: image.append, cpuModel: v.cpuModel, edu: { enabled: true }, nic: { model: 'virtio-net-pci', guestPort: 22 } },
      { artifactsDir: path.join(artifacts, name) },
    );
    try {
      const ch = await SshChannel.waitReady(
        { host: '127.0.0.1', port: machine.sshPort, username: 'root', privateKey: keys.clientPrivateKey, hostPublicKey: keys.hostPublicKey },
        { timeoutMs: 180_000, deadReason: () => machine.deadReason() },
      );
      const seconds = (performance.now() - started) / 1000;
      ch.close();
      return { seconds, machine };
    } catch (e) {
      await machine.shutdown();
      throw e;
    }
  } finally {
    await fs.rm(keyDir, { recursive: true, force: true });
  }
}

async function bootSamples(image: ReferenceImage, v: BootVariant, label: string, n: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const { seconds, machine } = await bootToReady(image, v, `${label}-${i}`);
    await machine.shutdown();
    log(`${label} boot ${i + 1}/${n}: ${seconds.toFixed(2)} s`);
    out.push(seconds);
  }
  return out;
}

/** Seconds to read all of guest RAM (every readable region) through one reader, into a reused buffer. */
async function readAll(memory: GuestMemory, target: Buffer): Promise<number> {
  const started = performance.now();
  let bytes = 0;
  for (const r of memory.layout.regions) {
    await memory.readInto(r.gpa, target.subarray(bytes, bytes + r.size));
    bytes += r.size;
  }
  if (bytes < 255 * 1024 * 1024) throw new Error(`read only ${bytes} bytes of guest RAM`);
  return (performance.now() - started) / 1000;
}

/** PRETTY_NAME from /etc/os-release, e.g. "Debian GNU/Linux 13 (trixie)". */
async function distribution(): Promise<string> {
  const text = await fs.readFile('/etc/os-release', 'utf8').catch(() => '');
  return /^PRETTY_NAME="?([^"\n]*)"?$/m.exec(text)?.[1] ?? 'unknown';
}

async function main(): Promise<void> {
  await fs.mkdir(artifacts, { recursive: true });
  const qemu = await checkQemu('qemu-system-x86_64');
  const image = await buildReferenceImage({ cacheDir: path.join(repoRoot, '.cache', 'images'), onProgress: log });
  // The probe boots the reference kernel itself: firmware running under KVM proves too little.
  const kvm = await kvmVerdict(qemu.binary, requireSetpriv(), image.kernel);
  const kvmState = kvm.execution?.works ? 'works' : kvm.device.usable ? `opens but does not run the guest: ${kvm.execution?.detail ?? '?'}` : `absent (${kvm.device.reason ?? '?'})`;
  log(`QEMU ${qemu.version}; KVM ${kvmState}`);

  const tuned = await bootSamples(image, { kernel: image.kernel }, 'tuned', BOOTS);
  // The kernel as Debian ships it: xz bzImage decompressed in the guest, no RDRAND for the RNG.
  const untuned = await bootSamples(image, { kernel: `/boot/vmlinuz-${image.kernelVersion}`, cpuModel: 'qemu64' }, 'untuned', BASELINE_BOOTS);

  const { machine } = await bootToReady(image, { kernel: image.kernel }, 'reads');
  const shared: number[] = [];
  const pmemsave: number[] = [];
  const shared4k: number[] = [];
  const pmemsave4k: number[] = [];
  try {
    const viaFile = await openGuestMemory(machine, { kind: 'shared-file' });
    const viaQmp = await openGuestMemory(machine, { kind: 'pmemsave' });
    // One destination for both readers, faulted in once, so neither pays for page faults.
    const target = Buffer.alloc(machine.memoryLayout.ramBytes, 1);
    for (let i = 0; i < READS; i++) {
      shared.push(await readAll(viaFile, target));
      pmemsave.push(await readAll(viaQmp, target));
      log(`256 MiB read ${i + 1}/${READS}: shared file ${shared.at(-1)!.toFixed(3)} s, pmemsave ${pmemsave.at(-1)!.toFixed(3)} s`);
    }
    for (const [reader, into] of [[viaFile, shared4k], [viaQmp, pmemsave4k]] as const) {
      const page = Buffer.alloc(4096, 1);
      for (let i = 0; i < PAGE_READS; i++) {
        const gpa = 0x100000 + ((i * 7919) % 60000) * 4096;
        const t = performance.now();
        await reader.readInto(gpa, page);
        into.push(performance.now() - t);
      }
    }
    await viaFile.close();
    await viaQmp.close();
  } finally {
    await machine.shutdown();
  }

  const ctx = { repoRoot, artifacts, log };
  const restores = await restoreSamples(ctx, RESTORES);
  const slowRate = await roundTripRate(ctx, 'real-time-waits', undefined, ROUND_TRIPS);
  const fastRate = await roundTripRate(ctx, 'cheap-waits', CHEAP_WAITS, ROUND_TRIPS);
  // Where KVM works, the reference guest's accelerator is chosen by this measurement, not assumed.
  const kvmRate = kvm.execution?.works ? await roundTripRate(ctx, 'kvm', undefined, KVM_ROUND_TRIPS, 'kvm') : undefined;
  // The cost of bouncing and of remapping, each against direct measured just above.
  const variantRates: Array<[string, number]> = [];
  for (const v of [VARIANTS.bounce, VARIANTS.iommu, VARIANTS['iommu-lazy'], VARIANTS['high-memory']]) {
    variantRates.push([v.id, await roundTripRate(ctx, `cheap-waits-${v.id}`, CHEAP_WAITS, ROUND_TRIPS, 'auto', v)]);
  }
  const oneGuest = await parallelThroughput(ctx, 1, PARALLEL_SCENARIOS);
  const twoGuests = await parallelThroughput(ctx, 2, PARALLEL_SCENARIOS);
  const explore = await exploreMetrics(ctx, image.kernelVersion);

  const metrics: Metric[] = [
    {
      name: 'coldBootToReadyS', unit: 's', value: median(tuned), samples: tuned, better: 'lower',
      baseline: { name: 'untuned Debian boot', value: median(untuned), samples: untuned },
    },
    {
      name: 'restoreToReadyS', unit: 's', value: median(restores.seconds), samples: restores.seconds, better: 'lower',
      baseline: { name: 'coldBootToReadyS', value: median(tuned), samples: tuned }, goal: '<= 0.5 s, >= 5x',
    },
    {
      name: 'roundTrips4KiBPerS', unit: '/s', value: fastRate, samples: [fastRate], better: 'higher',
      baseline: { name: 'roundTrips4KiBPerSRealTimeWaits', value: slowRate, samples: [slowRate] }, goal: '>= 50/s',
    },
    ...variantRates.map(([id, rate]) => ({
      name: `roundTrips4KiBPerS${id.replace(/(^|-)(\w)/g, (_m, _d, c: string) => c.toUpperCase())}`, unit: '/s', value: rate, samples: [rate], better: 'higher' as const,
      baseline: { name: 'roundTrips4KiBPerS (direct)', value: fastRate, samples: [fastRate] }, goal: `${VARIANTS[id as keyof typeof VARIANTS].description}`,
    })),
    ...(kvmRate === undefined
      ? []
      : [{
          name: 'roundTrips4KiBPerSTcgIcount', unit: '/s', value: fastRate, samples: [fastRate], better: 'higher' as const,
          baseline: { name: 'roundTrips4KiBPerSKvm', value: kvmRate, samples: [kvmRate] }, goal: 'the faster is the reference default',
        }]),
    {
      name: 'parallelGuests2PerS', unit: '/s', value: twoGuests, samples: [twoGuests], better: 'higher',
      baseline: { name: 'parallelGuests1PerS', value: oneGuest, samples: [oneGuest] }, goal: 'restore per scenario, 2 cores',
    },
    ...explore,
    {
      name: 'hostRead256MiBSharedS', unit: 's', value: median(shared), samples: shared, better: 'lower',
      baseline: { name: 'hostRead256MiBPmemsaveS', value: median(pmemsave), samples: pmemsave }, goal: '>= 20x',
    },
    {
      name: 'hostRead4KiBSharedMs', unit: 'ms', value: median(shared4k), samples: [], better: 'lower',
      baseline: { name: 'hostRead4KiBPmemsaveMs', value: median(pmemsave4k), samples: [] },
    },
  ];
  const report = {
    when: new Date().toISOString(),
    restoreStepsMedianMs: restores.stepsMs,
    accel: machine.accel,
    host: {
      distribution: await distribution(),
      kernel: os.release(),
      qemu: qemu.version,
      qemuPackage: qemu.package ?? null,
      guestKernel: image.kernelVersion,
      referenceAccel: REFERENCE_AUTO_ACCEL,
      kvm: kvmState,
      cpus: os.cpus().length,
      memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    },
    metrics: Object.fromEntries(
      metrics.flatMap((m) => [
        [m.name, { value: m.value, unit: m.unit, samples: m.samples }],
        ...(m.baseline ? [[/^[a-z]\w+$/.test(m.baseline.name) ? m.baseline.name : `${m.name}Baseline`, { value: m.baseline.value, unit: m.unit, samples: m.baseline.samples }]] : []),
      ]),
    ),
  };
  await fs.writeFile(path.join(repoRoot, 'reports', 'bench.json'), JSON.stringify(report, null, 2) + '\n');
  process.stdout.write(benchTable(metrics) + '\n');
  const faster = kvmRate === undefined ? undefined : fastRate >= kvmRate ? 'tcg' : 'kvm';
  process.stdout.write(`host: ${report.host.distribution}, QEMU ${qemu.version}, guest kernel ${image.kernelVersion}, KVM ${kvmState}\n`);
  if (faster) {
    process.stdout.write(`reference guest accelerator: ${faster.toUpperCase()} is faster (${fastRate.toFixed(1)}/s TCG with -icount, ${kvmRate!.toFixed(1)}/s KVM)${faster === REFERENCE_AUTO_ACCEL ? ', the default' : `: NOT the default (${REFERENCE_AUTO_ACCEL}); change REFERENCE_AUTO_ACCEL`}\n`);
  }
  process.stdout.write(`restoreToReadyS, median ms per step: ${Object.entries(restores.stepsMs).map(([k, v]) => `${k} ${v}`).join(', ')}\n`);
}

/**
 * dmahil explore beside the catalog run of the same invocation (`dmahil run --all`: a restore per scenario):
 * verified scenarios per second on live guests, and for each planted bug of the driver's test build the
 * time to find it and to shrink it, next to the catalog's time on that driver and whether it caught it.
 */
async function exploreMetrics(ctx: { repoRoot: string; artifacts: string; log: (m: string) => void }, kernelVersion: string): Promise<Metric[]> {
  const catalog = await catalogRun(ctx, 'catalog-shipped');
  const one = await exploreRun(ctx, 'explore-jobs-1', { jobs: 1, budgetMs: EXPLORE_S * 1000, seed: PLANTED_SEED });
  const two = await exploreRun(ctx, 'explore-jobs-2', { jobs: 2, budgetMs: EXPLORE_S * 1000, seed: PLANTED_SEED });
  const metrics: Metric[] = [
    {
      name: 'exploreScenariosPerS', unit: '/s', value: one.scenariosPerS, samples: [one.scenariosPerS], better: 'higher',
      baseline: { name: 'catalogScenariosPerS', value: catalog.perS, samples: [catalog.perS] }, goal: '>= 150/s (one live guest per variant)',
    },
    {
      name: 'exploreScenariosPerSJobs2', unit: '/s', value: two.scenariosPerS, samples: [two.scenariosPerS], better: 'higher',
      baseline: { name: 'exploreScenariosPerS', value: one.scenariosPerS, samples: [one.scenariosPerS] }, goal: '--jobs 2 (two live guests per variant)',
    },
  ];
  const module = await buildPlantedDriver({ kernelVersion, repoRoot: ctx.repoRoot });
  for (const bug of Object.keys(PLANTED_BUGS) as PlantedBug[]) {
    const driverOverride = { module, moduleParams: plantedParams(bug) };
    const cat = await catalogRun(ctx, `catalog-${bug}`, driverOverride);
    const r = await exploreRun(ctx, `explore-${bug}`, { jobs: 1, budgetMs: PLANTED_BUDGET_S * 1000, seed: PLANTED_SEED, driverOverride });
    const f = r.failure;
    const id = bug.replace(/(^|-)(\w)/g, (_, _d: string, c: string) => c.toUpperCase());
    const findS = f ? f.findMs / 1000 : PLANTED_BUDGET_S;
    const shrinkS = f ? f.shrinkMs / 1000 : 0;
    const met = f && findS + shrinkS < 30 ? 'met' : 'not met';
    metrics.push(
      {
        name: `exploreFind${id}S`, unit: 's', value: findS, samples: [findS], better: 'lower',
        baseline: { name: `catalog --all ${cat.caught.length ? 'catches' : 'misses'} it`, value: cat.seconds, samples: [cat.seconds] },
        goal: f ? `found + shrunk < 30 s: ${met}` : `NOT FOUND in ${PLANTED_BUDGET_S} s`,
      },
      { name: `exploreShrink${id}S`, unit: 's', value: shrinkS, samples: [shrinkS], better: 'lower', goal: f ? `to ${f.minimal.variant} ${f.minimal.scenario.size} B at offset ${f.minimal.scenario.offset}` : '' },
    );
  }
  return metrics;
}

main().catch((e: unknown) => {
  process.stderr.write(`bench: ${(e as Error).message}\n`);
  process.exitCode = 1;
});
