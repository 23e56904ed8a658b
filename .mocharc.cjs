// Specs are compiled by tsc into dist/; the reporter prints to the console, writes reports/junit.xml
// and ends with the plain "N passed, N failed" line CI reads.
module.exports = {
  spec: ['dist/specs/**/*.spec.js'],
  reporter: 'dist/specs/support/reporter.js',
  timeout: 60000,
  slow: 5000,
};
