/**
 * `manyfold probe --target target.json --queries FILE ...`: robust recall of any retrieval system over HTTP
 * (the robust-recall runner of src/eval/robust over the remote source of src/probe/remote.ts), with the release-gate
 * exit codes of ../exit-codes.ts.
 */
import { createWriteStream, mkdirSync, writeFileSync } from 'node:fs';
import { basename, dirname, extname } from 'node:path';
import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { createProgress, type Progress } from '../../util/progress.js';

import { EXIT_BARS_FAILED, EXIT_PARTIAL } from '../exit-codes.js';

export interface RemoteProbeFlags {
  target: string;
  queries: string;
  split?: string;
  imagesDir?: string;
  limit?: number;
  surrogate?: string;
  attacks?: string;
  eps?: number;
  steps?: number;
  maxQueries?: number;
  eot?: boolean;
  topK?: number;
  encoding?: string;
  imageSize?: number;
  targetId?: 'stem' | 'filename' | 'path';
  seed?: number;
  resamples?: number;
  json?: string;
  markdown?: string;
  jsonl?: string;
  failBelow?: string;
  quiet?: boolean;
}

const flagsSchema = z.object({
  limit: z.number().int().min(1).max(100_000).default(100),
  topK: z.number().int().min(1).max(1000).default(10),
  imageSize: z.number().int().min(8).max(1024).default(224),
  seed: z.number().int().min(0).default(0),
  resamples: z.number().int().min(1).default(1000),
});

export async function runRemoteProbeCommand(o: RemoteProbeFlags): Promise<number> {
  const [{ loadTargetSpec, TargetClient, redactedSpec }, { RemoteRankSource }, robust, wire, { readDatasetFile }, imageCache] = await Promise.all([
    import('../../probe/target/index.js'),
    import('../../probe/remote.js'),
    import('../../eval/robust/index.js'),
    import('../../probe/wire.js'),
    import('../../data/readers.js'),
    import('../../data/imageCache.js'),
  ]);
  const f = flagsSchema.parse({ limit: o.limit, topK: o.topK, imageSize: o.imageSize, seed: o.seed, resamples: o.resamples });
  const bars = o.failBelow ? robust.parseFailBelow(o.failBelow) : [];
  const encoding = wire.parseWireEncoding(o.encoding ?? 'png');
  const spec = await loadTargetSpec(o.target);

  // attacks: the default suite depends on what the probe can do (transfer needs a surrogate; the target's own
  // model is out of reach, so no white-box attack applies)
  const budgets = { eps: o.eps, steps: o.steps, maxQueries: o.maxQueries, eot: o.eot };
  const attacks = o.attacks
    ? robust.specsFromList(o.attacks, budgets)
    : robust.DEFAULT_REMOTE_SUITE.filter((a) => o.surrogate || robust.PROBE_ATTACKS[a.name].threatModel === 'black-box').map((a) => ({
        ...a,
        ...robust.specsFromList(a.name, budgets)[0],
      }));
  if (o.eot && (encoding.format !== 'jpeg' || !attacks.some((a) => a.eot))) throw new Error('--eot crafts transfer-pgd through JPEG: it needs --encoding jpeg[:Q] and transfer-pgd among --attacks');

  // the surrogate (transfer attacks) decides the image size and decode rule; else --image-size, Manyfold's cover
  let surrogate: { encoder: import('../../model/types.js').DualEncoder; tokenizer: import('../../model/types.js').Tokenizer; id: string } | undefined;
  if (o.surrogate) {
    const [{ initBackend }, { loadArtifact }, { resolveModelDir }] = await Promise.all([import('../../engine/backend.js'), import('../../model/artifact.js'), import('./eval.js')]);
    await initBackend('auto');
    const a = await loadArtifact(resolveModelDir(o.surrogate));
    surrogate = { encoder: a.model, tokenizer: a.tokenizer, id: a.manifest.id };
  }
  const decodeSpec = surrogate ? imageCache.decodeSpecForModel(surrogate.encoder.config) : imageCache.decodeSpecForModel({ image: { size: f.imageSize } });
  const S = decodeSpec.size;

  // the labelled queries: the first --limit images of the split, each with its item's id in the target
  const data = await readDatasetFile(o.queries, { ...(o.split ? { split: o.split } : {}), ...(o.imagesDir ? { imagesDir: o.imagesDir } : {}) });
  const records = data.records.slice(0, f.limit);
  if (records.length === 0) throw new Error(`${o.queries}: no images${o.split ? ` in split '${o.split}'` : ''}`);
  const idOf = (r: (typeof records)[number]): string => {
    if (r.targetId !== undefined) return r.targetId;
    if (!o.targetId) throw new Error(`${r.where}: no targetId (the id of this image's item in the target); add targetId to the queries file or pass --target-id stem|filename|path`);
    const file = basename(r.imageId);
    return o.targetId === 'path' ? r.imageId : o.targetId === 'filename' ? file : file.slice(0, file.length - extname(file).length);
  };
  const per = S * S * 3;
  const captions: string[] = [];
  const captionToImage: number[] = [];
  for (const [i, r] of records.entries()) {
    for (const c of r.captions) {
      captions.push(c);
      captionToImage.push(i);
    }
  }
  /** images are read and decoded one chunk at a time (a 10k-query probe at 224 px would hold 1.5 GB at once) */
  const loadRows = async (first: number, count: number): Promise<Uint8Array> => {
    const rows = new Uint8Array(count * per);
    for (let k = 0; k < count; k++) {
      const r = records[first + k];
      let bytes: Uint8Array | undefined;
      for (const p of r.imagePaths) {
        try {
          bytes = new Uint8Array(await readFile(p));
          break;
        } catch {
          /* next candidate */
        }
      }
      if (!bytes) throw new Error(`${r.where}: image not found (tried ${r.imagePaths.join(', ')})`);
      try {
        rows.set(await imageCache.decodeImage(bytes, decodeSpec), k * per);
      } catch (e) {
        throw new Error(`${r.where}: cannot decode ${r.imagePaths[0]}: ${(e as Error).message}`);
      }
    }
    return rows;
  };
  // a missing or broken image fails before any query is sent, naming the row
  for (let s = 0; s < records.length; s += 64) await loadRows(s, Math.min(64, records.length - s));

  const client = new TargetClient(spec);
  const log = o.jsonl ? (mkdirSync(dirname(o.jsonl), { recursive: true }), createWriteStream(o.jsonl)) : null;
  // one bar over the probe's chunks of work (clean, then each attack), on stderr
  let bar: Progress | null = null;
  let report: import('../../eval/robust/index.js').RobustProbeReport;
  try {
    report = await robust.runRobustProbe({
      source: new RemoteRankSource(client, encoding),
      queries: { size: S, images: loadRows, ids: records.map(idOf), labels: records.map((r) => r.where), captions, captionToImage, origin: `the first ${records.length} images of ${basename(o.queries)}${o.split ? ` (split ${o.split})` : ''}` },
      attacks,
      ...(surrogate ? { surrogate } : {}),
      topK: f.topK,
      seed: f.seed,
      resamples: f.resamples,
      ...(log ? { onAttempt: (a: object) => log.write(`${JSON.stringify(a)}\n`) } : {}),
      ...(o.quiet ? {} : { onProgress: (p: { stage: string; done: number; total: number }) => (bar ??= createProgress('probe', p.total)).update(p.done, { stage: p.stage }) }),
    });
  } finally {
    (bar as Progress | null)?.stop();
    surrogate?.encoder.dispose();
    if (log) await new Promise<void>((r) => log.end(r));
  }
  const full = { ...report, targetSpec: redactedSpec(spec) };
  const md = robust.renderRobustMarkdown(report);
  if (o.json) {
    mkdirSync(dirname(o.json), { recursive: true });
    writeFileSync(o.json, `${JSON.stringify(full, null, 2)}\n`);
  }
  if (o.markdown) {
    mkdirSync(dirname(o.markdown), { recursive: true });
    writeFileSync(o.markdown, md);
  }
  process.stdout.write(md);
  const failed = robust.checkBars(report, bars);
  if (report.partial) {
    process.stderr.write(`manyfold probe: partial report: ${report.error}\n`);
    return EXIT_PARTIAL;
  }
  if (failed.length) {
    process.stderr.write(`manyfold probe: below the bar:\n${failed.map((x) => `  ${x}`).join('\n')}\n`);
    return EXIT_BARS_FAILED;
  }
  return 0;
}
