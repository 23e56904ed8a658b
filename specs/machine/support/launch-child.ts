// Run as a separate Node process by lifetime.e2e.spec: launch a paused machine, report its QEMU pid and
// run directory as one JSON line, then idle until killed. Usage: node launch-child.js ARTIFACTS RUN_BASE

import { Machine } from '../../../harness/machine/index.js';
import { pausedConfig } from './fixtures.js';

const [artifactsDir, runDirBase] = process.argv.slice(2);
const machine = await Machine.launch(pausedConfig({ name: 'child' }), { artifactsDir: artifactsDir!, runDirBase });
process.stdout.write(JSON.stringify({ qemuPid: machine.pid, runDir: machine.runDir }) + '\n');
setInterval(() => {}, 60_000);
