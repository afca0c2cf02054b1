import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { baseOf, poolChecks, readTable, signTest, t975, type PoolableTable } from '../../training/pool-checks.js';

const spec = { scenes: { train: 640, test: 100 }, preset: 'tiny', fineTuneEpochs: 4, evalLimit: 40 };
const table = (perSeed: Record<string, number[]>, extra: Partial<PoolableTable> = {}): PoolableTable => ({
  budget: 'quick',
  spec,
  side: 'query',
  checks: Object.entries(perSeed).map(([name, p]) => ({ name, detail: `goal of ${name}`, perSeed: p })),
  ...extra,
});

describe('pooling per-seed checks across experiment tables', () => {
  it('t quantiles and the exact sign test', () => {
    expect(t975(2)).toBe(4.303);
    expect(t975(5)).toBe(2.571);
    expect(t975(100)).toBe(1.96);
    expect(() => t975(0)).toThrow(/positive integer/);
    expect(signTest(3, 3)).toBeCloseTo(0.25, 10);
    expect(signTest(6, 6)).toBeCloseTo(0.03125, 10);
    expect(signTest(5, 6)).toBeCloseTo(0.21875, 10);
    expect(signTest(3, 6)).toBe(1);
    expect(signTest(0, 0)).toBe(1);
  });

  it('pools the seeds of every table as independent units', () => {
    const [check] = poolChecks([
      { file: 'a', table: table({ gap: [1, 2, 3] }) },
      { file: 'b', table: table({ gap: [4, 5, -3] }) },
    ]);
    // values 1,2,3,4,5,-3: mean 2, sd sqrt(40/5)
    expect(check.n).toBe(6);
    expect(check.perTable).toEqual([[1, 2, 3], [4, 5, -3]]);
    expect(check.mean).toBe(2);
    expect(check.sd).toBe(Math.round(Math.sqrt(8) * 100) / 100);
    const half = (2.571 * Math.sqrt(8)) / Math.sqrt(6);
    expect(check.ci95).toEqual([Math.round((2 - half) * 100) / 100, Math.round((2 + half) * 100) / 100]);
    expect([check.positive, check.negative]).toEqual([5, 1]);
    expect(check.signTestP).toBeCloseTo(0.219, 3);
  });

  it('a check one table lacks contributes no seeds from it', () => {
    const pooled = poolChecks([
      { file: 'a', table: table({ gap: [1, 2], other: [3] }) },
      { file: 'b', table: table({ gap: [4] }) },
    ]);
    expect(pooled.find((c) => c.name === 'other')).toMatchObject({ n: 1, perTable: [[3], []], sd: null, ci95: null });
    // and a check only a later table has is pooled too, after the earlier tables' checks
    const later = poolChecks([
      { file: 'a', table: table({ gap: [1] }) },
      { file: 'b', table: table({ gap: [2], added: [5, 6] }) },
    ]);
    expect(later.map((c) => c.name)).toEqual(['gap', 'added']);
    expect(later[1]).toMatchObject({ n: 2, perTable: [[], [5, 6]], detail: 'goal of added' });
  });

  it('refuses tables run with another budget, spec, side or base, naming the difference', () => {
    const a = { file: 'a.json', table: table({ gap: [1] }) };
    expect(() => poolChecks([a, { file: 'b.json', table: table({ gap: [1] }, { spec: { ...spec, fineTuneEpochs: 16 } }) }])).toThrow(
      /b\.json was not run like a\.json.*spec\.fineTuneEpochs: 4 vs 16/,
    );
    expect(() => poolChecks([a, { file: 'b.json', table: table({ gap: [1] }, { budget: 'full' }) }])).toThrow(/budget: quick vs full/);
    expect(() => poolChecks([a, { file: 'b.json', table: table({ gap: [1] }, { side: 'both' }) }])).toThrow(/side: query vs both/);
    expect(() => poolChecks([a, { file: 'b.json', table: table({ gap: [1] }, { base: 'mf-1' }) }])).toThrow(/base: trained by the experiment vs mf-1/);
    // a field only the newer table has is not compared (older tables predate it)
    expect(poolChecks([a, { file: 'b.json', table: table({ gap: [2] }, { spec: { ...spec, textCandidates: 8 } }) }])[0].n).toBe(2);
  });

  it('reads the base of older tables from their protocol text', () => {
    expect(baseOf(table({}, { protocol: 'Training: tiny preset, clean = the given model mf-e85693276b3b (--base, not trained here); ...' }))).toBe('mf-e85693276b3b');
    expect(baseOf(table({}, { protocol: 'clean 50 epochs at lr 0.001' }))).toBeNull();
    expect(baseOf(table({}, { base: null, protocol: 'clean = the given model mf-x (--base' }))).toBeNull();
  });

  it('readTable names the file and the offending field', () => {
    const dir = mkdtempSync(join(tmpdir(), 'manyfold-pool-'));
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, JSON.stringify({ budget: 'quick', spec: {}, checks: [{ name: 'x', detail: 'd', perSeed: ['1'] }] }));
    expect(() => readTable(bad)).toThrow(/bad\.json: not an experiment table\.json: checks\.0\.perSeed\.0/);
    const broken = join(dir, 'broken.json');
    writeFileSync(broken, '{');
    expect(() => readTable(broken)).toThrow(/broken\.json: not a readable JSON table/);
  });
});
