/**
 * Pools the paired per-seed checks of several experiment tables (e.g. seeds 0-2 run one day, seeds 3-5 added
 * later) into one estimate per check: mean, sample sd, a 95% Student-t interval of the mean and an exact two-sided
 * sign test. The checks are differences between two rows of the same seed (same clean base, same evaluated
 * images), so the seeds are the independent units; pooling is refused when the tables were not run with the same
 * budget and spec, because then their differences do not measure the same thing.
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { mean as meanOf, sampleSd } from '../src/util/stats.js';

const tableSchema = z.object({
  budget: z.string(),
  spec: z.record(z.string(), z.unknown()),
  side: z.string().optional(),
  protocol: z.string().optional(),
  base: z.string().nullish(),
  checks: z.array(z.object({ name: z.string(), detail: z.string(), perSeed: z.array(z.number()).optional() })),
});
export type PoolableTable = z.infer<typeof tableSchema>;

export interface PooledCheck {
  name: string;
  detail: string;
  /** per table, the per-seed values in table order */
  perTable: number[][];
  n: number;
  mean: number | null;
  sd: number | null;
  /** 95% Student-t interval of the mean (null below 2 seeds) */
  ci95: [number, number] | null;
  positive: number;
  negative: number;
  /** exact two-sided sign test of "positive and negative differences are equally likely" (ties dropped) */
  signTestP: number | null;
}

export function readTable(file: string): PoolableTable {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new Error(`${file}: not a readable JSON table (${(err as Error).message})`);
  }
  const parsed = tableSchema.safeParse(raw);
  if (!parsed.success) {
    throw new Error(`${file}: not an experiment table.json: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}`);
  }
  return parsed.data;
}

/** 97.5% quantiles of Student's t for 1..30 degrees of freedom (standard table values) */
const T975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.16, 2.145, 2.131, 2.12, 2.11, 2.101, 2.093, 2.086, 2.08, 2.074, 2.069, 2.064, 2.06, 2.056, 2.052, 2.048, 2.045, 2.042];
export function t975(df: number): number {
  if (!Number.isInteger(df) || df < 1) throw new Error(`t975: degrees of freedom must be a positive integer, got ${df}`);
  return df <= T975.length ? T975[df - 1] : 1.96;
}

/** exact two-sided binomial(n, 1/2) test of k successes */
export function signTest(k: number, n: number): number {
  if (n === 0) return 1;
  const pmf = (i: number) => {
    let c = 1;
    for (let j = 0; j < i; j++) c = (c * (n - j)) / (j + 1);
    return c / 2 ** n;
  };
  const tail = Math.min(k, n - k);
  let p = 0;
  for (let i = 0; i <= tail; i++) p += pmf(i);
  return Math.min(1, 2 * p);
}

const r2 = (x: number) => Math.round(x * 100) / 100;

/** The --base model of a table; tables written before the field existed name it only in their protocol text. */
export function baseOf(t: PoolableTable): string | null {
  if (t.base !== undefined) return t.base;
  return /clean = the given model (\S+)/.exec(t.protocol ?? '')?.[1] ?? null;
}

/** Spec fields that both tables define and that differ (fields only one defines predate it and are not compared). */
export function specDifferences(a: PoolableTable, b: PoolableTable): string[] {
  const diffs: string[] = [];
  if (a.budget !== b.budget) diffs.push(`budget: ${a.budget} vs ${b.budget}`);
  if (a.side !== undefined && b.side !== undefined && a.side !== b.side) diffs.push(`side: ${a.side} vs ${b.side}`);
  const [baseA, baseB] = [baseOf(a), baseOf(b)];
  if (baseA !== baseB) diffs.push(`base: ${baseA ?? 'trained by the experiment'} vs ${baseB ?? 'trained by the experiment'}`);
  for (const k of Object.keys(a.spec)) {
    if (!(k in b.spec)) continue;
    const [x, y] = [JSON.stringify(a.spec[k]), JSON.stringify(b.spec[k])];
    if (x !== y) diffs.push(`spec.${k}: ${x} vs ${y}`);
  }
  return diffs;
}

export function poolChecks(tables: { file: string; table: PoolableTable }[]): PooledCheck[] {
  if (tables.length < 1) throw new Error('poolChecks: give at least one table');
  const first = tables[0];
  for (const t of tables.slice(1)) {
    const diffs = specDifferences(first.table, t.table);
    if (diffs.length) throw new Error(`${t.file} was not run like ${first.file}, so its checks cannot be pooled: ${diffs.join('; ')}`);
  }
  // every check of any table, in order of first appearance: newer tables may carry checks older ones lack
  const names = [...new Set(tables.flatMap((t) => t.table.checks.map((c) => c.name)))];
  return names.map((name) => {
    const perTable = tables.map((t) => t.table.checks.find((c) => c.name === name)?.perSeed ?? []);
    const values = perTable.flat();
    const n = values.length;
    const mean = n ? meanOf(values) : null;
    const sd = sampleSd(values);
    const half = sd !== null ? (t975(n - 1) * sd) / Math.sqrt(n) : null;
    const positive = values.filter((x) => x > 0).length;
    const negative = values.filter((x) => x < 0).length;
    return {
      name,
      detail: tables.flatMap((t) => t.table.checks).find((c) => c.name === name)!.detail,
      perTable,
      n,
      mean: mean === null ? null : r2(mean),
      sd: sd === null ? null : r2(sd),
      ci95: mean !== null && half !== null ? [r2(mean - half), r2(mean + half)] : null,
      positive,
      negative,
      signTestP: n ? Math.round(signTest(positive, positive + negative) * 1000) / 1000 : null,
    };
  });
}

export function pooledMarkdown(checks: PooledCheck[], files: string[]): string {
  const lines = [
    `Pooled over ${files.join(', ')}: the seeds are the units (mean of the per-seed paired differences, sample sd, 95% Student-t interval, exact two-sided sign test).`,
    '',
    '| check | goal | seeds | per seed | mean | sd | 95% CI | positive / negative | sign test p |',
    '|---|---|---|---|---|---|---|---|---|',
  ];
  for (const c of checks) {
    const fmt = (x: number | null) => (x === null ? '-' : String(x));
    lines.push(
      `| ${c.name} | ${c.detail} | ${c.n} | ${c.perTable.map((p) => p.join(', ')).join(' / ')} | ${fmt(c.mean)} | ${fmt(c.sd)} | ${c.ci95 ? `[${c.ci95[0]}, ${c.ci95[1]}]` : '-'} | ${c.positive} / ${c.negative} | ${fmt(c.signTestP)} |`,
    );
  }
  return `${lines.join('\n')}\n`;
}
