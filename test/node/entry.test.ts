/**
 * functions/node.ts, the Node entry a process manager starts, refuses bad flags by name with exit 2 before loading
 * anything (the server itself is tested through `manyfold serve`, test/api/serve.test.ts).
 */
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';

const run = (...args: string[]) => spawnSync(process.execPath, ['--import', 'tsx', 'functions/node.ts', ...args], { encoding: 'utf8', timeout: 60_000 });

describe('functions/node.ts flags', () => {
  it.each([
    [['--data', 'd'], /missing --model\n/],
    [[], /missing --model and --data\n/],
    [['--model', 'm', '--data', 'd', '--port', '80a'], /--port: expected an integer >= 0 \(0 = any free port\), got "80a"/],
    [['--model', 'm', '--data', 'd', '--port=-1'], /--port: expected an integer >= 0/],
    [['--model', 'm', '--data', 'd', '--bogus'], /Unknown option '--bogus'/],
    [['--model', 'm', '--data', 'd', '--port'], /Option '--port <value>' argument missing/],
  ])('%j -> exit 2 naming the flag, with the usage', (args, message) => {
    const r = run(...args);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(message);
    expect(r.stderr).toContain('usage: functions/node.ts --model DIR --data DIR');
    expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
  });
});
