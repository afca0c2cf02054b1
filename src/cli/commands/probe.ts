import { writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import { intFlag } from '../flags.js';

/** `manyfold probe --url http://127.0.0.1:8080 --key KEY`: start a probe, follow its progress, print the report. */
export function registerProbeCommand(program: Command): void {
  program
    .command('probe')
    .description('run an attack probe against a running Manyfold API and print robust recall (client of POST /v1/probes)')
    .requiredOption('--url <url>', 'API base URL, e.g. http://127.0.0.1:8080')
    .option('--key <key>', 'API key with the probe scope (default: MANYFOLD_API_KEY)')
    .option('--namespace <ns>', 'namespace to sample query items from')
    .option('--sample <n>', 'items to sample', intFlag(1))
    .option('--attacks <list>', 'comma-separated attacks: pgd,text,charedit,coattack,sga,blackbox-image,blackbox-text')
    .option('--eps <n>', 'image budget in /255 units', Number)
    .option('--steps <n>', 'PGD steps', intFlag(0))
    .option('--max-queries <n>', 'black-box queries per item', intFlag(1))
    .option('--seed <n>', 'seed', intFlag(0))
    .option('--json <file>', 'write the report JSON here')
    .option('--html <file>', 'write the HTML report here')
    .option('--poll <ms>', 'poll interval', intFlag(50), 1000)
    .action(async (o) => {
      const key = (o.key as string | undefined) ?? process.env.MANYFOLD_API_KEY;
      if (!key) throw new Error('--key (or MANYFOLD_API_KEY) is required');
      const base = String(o.url).replace(/\/+$/, '');
      const headers = { authorization: `Bearer ${key}`, 'content-type': 'application/json' };
      const attacks = o.attacks
        ? String(o.attacks)
            .split(',')
            .map((name) => ({
              name: name.trim(),
              ...(o.eps !== undefined && ['pgd', 'coattack', 'sga', 'blackbox-image'].includes(name.trim()) ? { eps: o.eps } : {}),
              ...(o.steps !== undefined && ['pgd', 'coattack', 'sga'].includes(name.trim()) ? { steps: o.steps } : {}),
              ...(o.maxQueries !== undefined && name.trim().startsWith('blackbox') ? { maxQueries: o.maxQueries } : {}),
            }))
        : undefined;
      const body = { ...(o.namespace ? { namespace: o.namespace } : {}), ...(o.sample ? { sample: o.sample } : {}), ...(attacks ? { attacks } : {}), ...(o.seed !== undefined ? { seed: o.seed } : {}) };
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
        const line = `${probe.status} ${probe.progress.stage} ${probe.progress.done}/${probe.progress.total}`;
        if (line !== last) process.stderr.write(`  ${line}\n`);
        last = line;
        if (probe.status === 'succeeded') {
          const rep = probe.report as { clean: Record<string, { R1: number }>; attacks: { name: string; i2t?: { R1: number; asr: number }; t2i?: { R1: number; asr: number } }[]; worstCase: Record<string, { R1: number } | undefined>; protocol: string };
          process.stdout.write(`clean R@1: image->text ${rep.clean.i2t.R1}  text->image ${rep.clean.t2i.R1}\n`);
          for (const a of rep.attacks) {
            process.stdout.write(`${a.name.padEnd(15)} ${a.i2t ? `i->t R@1 ${a.i2t.R1} (ASR ${a.i2t.asr}%)  ` : ''}${a.t2i ? `t->i R@1 ${a.t2i.R1} (ASR ${a.t2i.asr}%)` : ''}\n`);
          }
          process.stdout.write(`worst case R@1: image->text ${rep.worstCase.i2t?.R1 ?? '-'}  text->image ${rep.worstCase.t2i?.R1 ?? '-'}\n${rep.protocol}\n`);
          if (o.json) writeFileSync(o.json, `${JSON.stringify(probe, null, 2)}\n`);
          if (o.html) writeFileSync(o.html, await (await fetch(`${base}/v1/probes/${id}?format=html`, { headers })).text());
          process.stdout.write(`report: ${base}/v1/probes/${id}?format=html\n`);
          return;
        }
        if (probe.status === 'failed' || probe.status === 'canceled') throw new Error(`probe ${id} ${probe.status}: ${probe.error ?? ''}`);
      }
    });
}
