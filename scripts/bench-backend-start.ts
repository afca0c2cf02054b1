/**
 * What `--backend auto` costs at command start, against an explicit backend: each run is a fresh Node process
 * (as a CLI start is) that imports the engine and calls initBackend(kind) once.
 *
 *   npx tsx scripts/bench-backend-start.ts [--kinds wasm,auto] [--repeats 5] [--json docs/bench/backend-start-DATE.json]
 *
 * Reported per kind: the in-process initBackend time (median, min, max ms) and the whole process's wall time
 * (median ms: tsx transform, imports, init, exit), with the backend chosen and its reason. The kinds alternate
 * run by run, so a change in machine load hits both. The 1-minute load average is printed before and after.
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { BACKEND_KINDS } from '../src/config.js';

const { values: args } = parseArgs({
  options: {
    kinds: { type: 'string', default: 'wasm,auto' },
    repeats: { type: 'string', default: '5' },
    json: { type: 'string' },
    child: { type: 'string' },
  },
});

if (args.child) {
  // the measured process: one initBackend, its time and choice on stdout
  const { initBackend } = await import('../src/engine/backend.js');
  const t = performance.now();
  const info = await initBackend(args.child as (typeof BACKEND_KINDS)[number]);
  process.stdout.write(JSON.stringify({ ms: performance.now() - t, name: info.name, reason: info.reason }) + '\n');
  process.exit(0);
}

const kinds = args.kinds.split(',').map((k) => k.trim());
for (const k of kinds) if (!(BACKEND_KINDS as readonly string[]).includes(k)) throw new Error(`--kinds: '${k}' is not one of ${BACKEND_KINDS.join(', ')}`);
const repeats = Number(args.repeats);
if (!Number.isInteger(repeats) || repeats < 1) throw new Error(`--repeats must be a positive integer, got ${args.repeats}`);

const self = fileURLToPath(import.meta.url);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const runs = new Map<string, { initMs: number[]; wallMs: number[]; name: string; reason: string }>();
const loadBefore = loadavg()[0];
console.log(`load average before: ${loadBefore.toFixed(2)}`);
for (let r = 0; r < repeats; r++) {
  for (const kind of kinds) {
    const t = performance.now();
    const p = spawnSync(process.execPath, ['--import', 'tsx', self, '--child', kind], { encoding: 'utf8' });
    const wall = performance.now() - t;
    if (p.status !== 0) throw new Error(`child '${kind}' exited ${p.status}: ${p.stderr}`);
    const line = p.stdout.trim().split('\n').at(-1)!;
    const o = JSON.parse(line) as { ms: number; name: string; reason: string };
    const e = runs.get(kind) ?? { initMs: [], wallMs: [], name: o.name, reason: o.reason };
    e.initMs.push(o.ms);
    e.wallMs.push(wall);
    runs.set(kind, e);
  }
}
const loadAfter = loadavg()[0];
const out = {
  date: new Date().toISOString(),
  repeats,
  loadAverage: { before: loadBefore, after: loadAfter },
  kinds: Object.fromEntries(
    [...runs].map(([kind, e]) => [
      kind,
      {
        backend: e.name,
        reason: e.reason,
        initMedianMs: Math.round(median(e.initMs)),
        initMinMs: Math.round(Math.min(...e.initMs)),
        initMaxMs: Math.round(Math.max(...e.initMs)),
        processWallMedianMs: Math.round(median(e.wallMs)),
      },
    ]),
  ),
};
for (const [kind, e] of Object.entries(out.kinds)) {
  console.log(`${kind}: initBackend median ${e.initMedianMs} ms (min ${e.initMinMs}, max ${e.initMaxMs}); process wall median ${e.processWallMedianMs} ms -> ${e.backend}`);
  console.log(`  ${e.reason}`);
}
console.log(`load average after: ${loadAfter.toFixed(2)}`);
if (args.json) writeFileSync(args.json, JSON.stringify(out, null, 2) + '\n');
