import { Command, CommanderError } from 'commander';
import { describe, expect, it } from 'vitest';
import { registerExperimentCommand } from '../../src/cli/commands/experiment.js';
import { intListFlag } from '../../src/cli/flags.js';

describe('intListFlag', () => {
  it('parses a single integer or a comma list', () => {
    expect(intListFlag(0)('3')).toEqual([3]);
    expect(intListFlag(0)('3, 4,5')).toEqual([3, 4, 5]);
  });

  it('names the offending element, a value below the minimum, and repeats', () => {
    expect(() => intListFlag(0)('3,x')).toThrow(/"x" in "3,x": expected an integer/);
    expect(() => intListFlag(0)('2,-1')).toThrow(/"-1" in "2,-1": expected an integer >= 0/);
    expect(() => intListFlag(0)('1,2,1')).toThrow(/1 appears twice in "1,2,1"/);
    expect(() => intListFlag(0)(' , ')).toThrow(/expected a comma-separated list of integers/);
  });

  it('manyfold experiment --seed refuses a bad list before running anything', async () => {
    const program = new Command().exitOverride().configureOutput({ writeErr: () => undefined });
    registerExperimentCommand(program);
    const err = await program.parseAsync(['node', 'manyfold', 'experiment', '--out', '/nonexistent/x', '--seed', '3,three']).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CommanderError);
    expect((err as CommanderError).message).toMatch(/--seed <k>.*"three" in "3,three"/);
  });
});
