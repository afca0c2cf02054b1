/**
 * Pools the per-seed checks of experiment tables run at different times with the same budget (training/pool-checks.ts):
 *
 *   npx tsx scripts/pool-checks.ts --tables A/table.json,B/table.json [--json OUT.json]
 *
 * Prints a Markdown table; --json also writes the pooled checks with the input files.
 */
import { writeFileSync } from 'node:fs';
import { z } from 'zod';
import { parseFlags } from './flag-errors.js';
import { pooledMarkdown, poolChecks, readTable } from '../training/pool-checks.js';

const flags = z
  .object({
    tables: z.string({ error: '--tables A.json,B.json is required' }).transform((s) => s.split(',').map((x) => x.trim()).filter(Boolean)),
    json: z.string().optional(),
  })
  .strict();
try {
  const o = parseFlags(flags);
  if (!o.tables.length) throw new Error('bad flag: --tables: name at least one table.json');
  const tables = o.tables.map((file) => ({ file, table: readTable(file) }));
  const checks = poolChecks(tables);
  process.stdout.write(pooledMarkdown(checks, o.tables));
  if (o.json) {
    writeFileSync(o.json, `${JSON.stringify({ tables: o.tables, generated: new Date().toISOString(), checks }, null, 2)}\n`);
    process.stderr.write(`wrote ${o.json}\n`);
  }
} catch (err) {
  process.stderr.write(`pool-checks: ${(err as Error).message}\n`);
  process.exit(2);
}
