// Run as a separate Node process by lifetime.e2e.spec: launch a paused machine, report its QEMU pid and
// run directory as one JSON line, then idle until killed, or with MODE "exit" leave at once without
// calling shutdown(). Usage: node launch-child.js ARTIFACTS RUN_BASE [MODE]

import { Machine } from '../../../harness/machine/index.js';
import { pausedConfig } from './fixtures.js';

const [artifactsDir, runDirBase, mode] = process.argv.slice(2);
const machine = await Machine.launch(pausedConfig({ name: 'child' }), { artifactsDir: artifactsDir!, runDirBase });
process.stdout.write(JSON.stringify({ qemuPid: machine.pid, runDir: machine.runDir }) + '\n');
if (mode === 'exit') process.exit(0); // the event loop still holds QEMU's pipes, so exit explicitly
setInterval(() => {}, 60_000);
