/**
 * Scheduler entry of the nightly job: `node --import tsx scripts/nightly.ts [manyfold nightly flags]`
 * (the same as `manyfold nightly ...`; see docs/operations.md for flags, exit codes and the summary).
 * Used by .github/workflows/nightly.yml on the self-hosted GPU runner.
 */
process.argv.splice(2, 0, 'nightly');
await import('../src/cli/main.js');
