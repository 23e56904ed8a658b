// Mocha reporter for dmahil: mocha's own spec reporter on the console, its xunit reporter into
// reports/junit.xml, and a last line "N passed, N failed, N skipped" counted from the run itself,
// so a run that executed no test says "0 passed, 0 failed" instead of looking green.
import fs from 'node:fs';
import path from 'node:path';
import Mocha from 'mocha';

const JUNIT = process.env.DMAHIL_JUNIT ?? 'reports/junit.xml';

class DmahilReporter extends Mocha.reporters.Base {
  constructor(runner: Mocha.Runner, options: Mocha.MochaOptions) {
    super(runner, options);
    fs.mkdirSync(path.dirname(JUNIT), { recursive: true });
    new Mocha.reporters.Spec(runner, options);
    new Mocha.reporters.XUnit(runner, { ...options, reporterOptions: { output: JUNIT, suiteName: 'dmahil' } });
    let passed = 0;
    let failed = 0;
    let skipped = 0;
    runner.on(Mocha.Runner.constants.EVENT_TEST_PASS, () => passed++);
    runner.on(Mocha.Runner.constants.EVENT_TEST_FAIL, () => failed++);
    runner.on(Mocha.Runner.constants.EVENT_TEST_PENDING, () => skipped++);
    runner.once(Mocha.Runner.constants.EVENT_RUN_END, () => {
      // After the spec reporter's epilogue, which it prints on the same event.
      process.nextTick(() => console.log(`\n${passed} passed, ${failed} failed, ${skipped} skipped`));
    });
  }
}

export default DmahilReporter;
