import { writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import { intFlag } from '../flags.js';
import { PROBE_ATTACK_NAMES } from '../../eval/robust/catalog.js';

/**
 * `manyfold probe --url http://127.0.0.1:8080 --key KEY`: start a probe on a Manyfold API, follow it, print the report.
 * `manyfold probe --target target.json --queries FILE ...`: probe any retrieval system over HTTP (probe-remote.ts).
 */
export function registerProbeCommand(program: Command): void {
  program
    .command('probe')
    .description(
      'robust recall under attack: of a running Manyfold API (--url; client of POST /v1/probes) or of any retrieval system over HTTP ' +
        '(--target target.json --queries FILE; docs/probe-targets.md). Exit codes: 0 ok, 1 error, 2 bad config, 3 below a --fail-below bar, 4 partial report',
    )
    .option('--url <url>', 'Manyfold API base URL, e.g. http://127.0.0.1:8080')
    .option('--target <file>', 'remote mode: target.json describing the system under test (docs/probe-targets.md)')
    .option('--queries <file>', 'remote mode: labelled queries, Karpathy JSON or JSONL with targetId per image')
    .option('--split <name>', 'remote mode: split of the queries file to use (default: all rows)')
    .option('--images-dir <dir>', 'remote mode: directory the queries file\'s image paths are relative to')
    .option('--limit <n>', 'remote mode: image queries (their captions are the text queries; default 100)', intFlag(1))
    .option('--surrogate <dir>', 'remote mode: Manyfold model the transfer attacks are crafted on (its input size and decode are used)')
    .option('--top-k <n>', 'remote mode: results requested per query (default 10)', intFlag(1))
    .option('--encoding <enc>', 'remote mode: how images go over the wire: png (default) | jpeg | jpeg:QUALITY')
    .option('--eot', 'remote mode: craft transfer-pgd with expectation over the JPEG encoding (with --encoding jpeg)')
    .option('--image-size <n>', 'remote mode without a surrogate: image edge sent (default 224)', intFlag(8))
    .option('--target-id <rule>', 'remote mode: the target id when the queries file has no targetId: stem | filename | path')
    .option('--resamples <n>', 'remote mode: bootstrap resamples for the intervals (default 1000)', intFlag(1))
    .option('--markdown <file>', 'write the Markdown report here')
    .option('--jsonl <file>', 'remote mode: log every evaluated query (attack, rank before / after, queries used)')
    .option('--fail-below <bars>', 'e.g. robust.tr.r1=30,robust.ir.r1=30: exit 3 when a figure is below its bar (both modes)')
    .option('--quiet', 'remote mode: no progress bars')
    .option('--key <key>', 'API key with the probe scope (default: MANYFOLD_API_KEY)')
    .option('--namespace <ns>', 'namespace to sample query items from')
    .option('--sample <n>', 'items to sample from the namespace (searched in the production index, read-only)', intFlag(1))
    .option('--half-width <points>', 'instead of --sample: the 95% interval half-width wanted on R@K (5 -> 385 items)', Number)
    .option('--attacks <list>', `comma-separated attacks of ${PROBE_ATTACK_NAMES.join(', ')} (a Manyfold API: white-box and blackbox-*; --target: transfer-* with --surrogate, blackbox-*)`)
    .option('--eps <n>', 'image budget in /255 units', Number)
    .option('--steps <n>', 'PGD steps', intFlag(0))
    .option('--max-queries <n>', 'black-box queries per item', intFlag(1))
    .option('--seed <n>', 'seed', intFlag(0))
    .option('--json <file>', 'write the report JSON here')
    .option('--html <file>', 'write the HTML report here')
    .option('--poll <ms>', 'poll interval', intFlag(50), 1000)
    .action(async (o) => {
      if (o.target || o.queries) {
        if (!o.target || !o.queries) throw new Error('remote mode needs both --target and --queries');
        if (o.url) throw new Error('give --url (a Manyfold API) or --target (any system), not both');
        if (o.targetId !== undefined && !['stem', 'filename', 'path'].includes(o.targetId)) throw new Error(`--target-id must be stem, filename or path, got '${o.targetId}'`);
        const { runRemoteProbeCommand } = await import('./probe-remote.js');
        process.exitCode = await runRemoteProbeCommand(o);
        return;
      }
      if (!o.url) throw new Error('give --url (a running Manyfold API) or --target with --queries (any retrieval system)');
      const key = (o.key as string | undefined) ?? process.env.MANYFOLD_API_KEY;
      if (!key) throw new Error('--key (or MANYFOLD_API_KEY) is required');
      const base = String(o.url).replace(/\/+$/, '');
      const headers = { authorization: `Bearer ${key}`, 'content-type': 'application/json' };
      const { specsFromList, renderRobustMarkdown, checkBars, parseFailBelow } = await import('../../eval/robust/index.js');
      const bars = o.failBelow ? parseFailBelow(o.failBelow) : [];
      const attacks = o.attacks ? specsFromList(o.attacks, { eps: o.eps, steps: o.steps, maxQueries: o.maxQueries }) : undefined;
      const body = { ...(o.namespace ? { namespace: o.namespace } : {}), ...(o.sample ? { sample: o.sample } : {}), ...(o.halfWidth !== undefined ? { halfWidth: o.halfWidth } : {}), ...(attacks ? { attacks } : {}), ...(o.seed !== undefined ? { seed: o.seed } : {}) };
      const res = await fetch(`${base}/v1/probes`, { method: 'POST', headers, body: JSON.stringify(body) });
      const created = (await res.json()) as { probe?: { id: string }; error?: { message: string } };
      if (!res.ok || !created.probe) throw new Error(`POST /v1/probes: ${res.status} ${created.error?.message ?? ''}`);
      const id = created.probe.id;
      process.stderr.write(`probe ${id} started\n`);
      let last = '';
      for (;;) {
        await new Promise((r) => setTimeout(r, o.poll as number));
        const r = await fetch(`${base}/v1/probes/${id}`, { headers });
        const { probe } = (await r.json()) as { probe: { status: string; progress: { done: number; total: number; stage: string }; report?: unknown; error?: string } };
        const eta = (probe.progress as { etaSeconds?: number }).etaSeconds;
        const line = `${probe.status} ${probe.progress.stage} ${probe.progress.done}/${probe.progress.total}${eta !== undefined ? ` (eta ${eta} s)` : ''}`;
        if (line !== last) process.stderr.write(`  ${line}\n`);
        last = line;
        if (probe.status === 'succeeded') {
          const report = probe.report as import('../../eval/robust/index.js').RobustProbeReport;
          const md = renderRobustMarkdown(report);
          process.stdout.write(md);
          if (o.markdown) writeFileSync(o.markdown, md);
          if (o.json) writeFileSync(o.json, `${JSON.stringify(probe, null, 2)}\n`);
          if (o.html) writeFileSync(o.html, await (await fetch(`${base}/v1/probes/${id}?format=html`, { headers })).text());
          process.stdout.write(`report: ${base}/v1/probes/${id}?format=html\n`);
          const failed = checkBars(report, bars);
          if (failed.length) {
            process.stderr.write(`manyfold probe: below the bar:\n${failed.map((x) => `  ${x}`).join('\n')}\n`);
            process.exitCode = 3;
          }
          return;
        }
        if (probe.status === 'failed' || probe.status === 'canceled') throw new Error(`probe ${id} ${probe.status}: ${probe.error ?? ''}`);
      }
    });
}
