// Run as a separate Node process by lifetime.e2e.spec: make a private dir (as the per-run keys are), launch
// a paused machine, report its QEMU pid, run directory and private dir as one JSON line, then idle until killed, or with MODE "exit" leave at once without
// calling shutdown(). Usage: node launch-child.js ARTIFACTS RUN_BASE [MODE]

import { createPrivateDir, Machine } from '../../../harness/machine/index.js';
import { pausedConfig } from './fixtures.js';

const [artifactsDir, runDirBase, mode] = process.argv.slice(2);
const privateDir = createPrivateDir('child-keys');
const machine = await Machine.launch(pausedConfig({ name: 'child' }), { artifactsDir: artifactsDir!, runDirBase });
process.stdout.write(JSON.stringify({ qemuPid: machine.pid, runDir: machine.runDir, privateDir }) + '\n');
if (mode === 'exit') process.exit(0); // the event loop still holds QEMU's pipes, so exit explicitly
setInterval(() => {}, 60_000);
