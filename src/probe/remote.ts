/**
 * Robust recall of a retrieval system Manyfold does not own, reached over HTTP (probe/target: the TargetClient).
 *
 * Queries are a labelled set: images with the target's id of their item, and those items' captions. Directions:
 * `tr` = an image query must bring its item back (image -> item), `ir` = a caption must (text -> item). Each
 * query's rank of its gold id among the target's top-K is measured clean and under every attack; a query absent
 * from the top-K ranks K (a miss at every cut-off <= K).
 *
 * Threat models the attacks run under (each report states them):
 * - transfer (white-box on a surrogate Manyfold model; nothing but the final queries reaches the target):
 *   `transfer-pgd` (images), `transfer-text` (one-word WordNet swaps), `transfer-coattack` (both);
 * - query-only black-box against the target itself, within a per-item query budget: `blackbox-image`
 *   (Square-style random search on the returned scores, rank when there are none) and `blackbox-text`.
 * Every image that leaves this process is quantised to 8 bits and encoded (probe/wire.ts); recall is measured on
 * exactly those bytes. Text attacks send their final strings.
 *
 * A target that misbehaves ends the probe early with what was measured so far marked `partial` (fatal errors:
 * auth, budget) or counts the query as failed after the client's retries (the rest); nothing is retried forever.
 */
import { attackByName } from '../attacks/registry.js';
import type { OracleHit, OracleQuery, ScoreOracle } from '../attacks/blackbox/oracle.js';
import type { AttackBatch, AttackEnv, AttackName, AttackResult } from '../attacks/types.js';
import { bootstrapMeanCI, type ConfidenceInterval } from '../eval/bootstrap.js';
import type { DualEncoder, Tokenizer } from '../model/types.js';
import { TargetError, type TargetClient, type TargetHit, type TargetQuery, type TargetStats } from './target/index.js';
import { describeEncoding, encodeImage, quantize, type WireEncoding } from './wire.js';

export const REMOTE_ATTACKS = ['transfer-pgd', 'transfer-text', 'transfer-coattack', 'blackbox-image', 'blackbox-text'] as const;
export type RemoteAttackName = (typeof REMOTE_ATTACKS)[number];

interface RemoteAttackInfo {
  threatModel: 'transfer' | 'black-box';
  /** which query sides it perturbs */
  modalities: readonly ('image' | 'text')[];
  /** the attack of src/attacks that does the work */
  recipe: AttackName;
}

/** each remote attack describes itself once; nothing else lists modalities or threat models */
const REMOTE_ATTACK_INFO: Record<RemoteAttackName, RemoteAttackInfo> = {
  'transfer-pgd': { threatModel: 'transfer', modalities: ['image'], recipe: 'pgd' },
  'transfer-text': { threatModel: 'transfer', modalities: ['text'], recipe: 'text' },
  'transfer-coattack': { threatModel: 'transfer', modalities: ['image', 'text'], recipe: 'coattack' },
  'blackbox-image': { threatModel: 'black-box', modalities: ['image'], recipe: 'blackbox-image' },
  'blackbox-text': { threatModel: 'black-box', modalities: ['text'], recipe: 'blackbox-text' },
};

export interface RemoteAttackSpec {
  name: RemoteAttackName;
  /** L-inf budget in /255 units (image attacks; default 4) */
  eps?: number;
  /** PGD / Co-Attack steps (default 10) */
  steps?: number;
  /** black-box queries per item (default 100) */
  maxQueries?: number;
  /** transfer-pgd with JPEG on the wire: craft with expectation over JPEG encoding (attacks/transformations/jpeg.ts) */
  eot?: boolean;
}

export interface RemoteQuerySet {
  /** image edge S: images are sent as S x S files (the surrogate's input size) */
  size: number;
  /** uint8 RGB, row-major [N, S, S, 3] */
  images: Uint8Array;
  /** per image: the target's id of its item (the gold answer of both directions) */
  targetIds: readonly string[];
  /** per image: where it came from (file:line), for the JSONL log */
  labels: readonly string[];
  captions: readonly string[];
  /** caption c belongs to image captionToImage[c] */
  captionToImage: readonly number[];
}

export interface RemoteProbeOptions {
  client: TargetClient;
  queries: RemoteQuerySet;
  attacks: readonly RemoteAttackSpec[];
  /** white-box model the transfer attacks are crafted on (required by transfer-*) */
  surrogate?: { encoder: DualEncoder; tokenizer: Tokenizer; id: string };
  encoding: WireEncoding;
  /** results requested per query (default 10) */
  topK?: number;
  /** recall cut-offs (default 1, 5, 10; each <= topK) */
  ks?: readonly number[];
  seed?: number;
  resamples?: number;
  /** one record per query sent for evaluation (the --jsonl log) */
  onAttempt?: (a: AttemptRecord) => void;
  onProgress?: (stage: string, done: number, total: number) => void;
  /** each attack's raw output (float pixels before quantisation, final texts): for measurements beside the wire */
  onAttackOutput?: (name: RemoteAttackName, result: AttackResult) => void;
}

export interface AttemptRecord {
  stage: 'clean' | RemoteAttackName;
  direction: 'tr' | 'ir';
  query: number;
  /** image label or the caption sent */
  input: string;
  gold: string;
  cleanRank: number | null;
  rank: number | null;
  /** target queries the attack spent on this item (black-box), 0 for transfer */
  attackQueries: number;
  error?: string;
}

export interface DirectionFigures {
  /** queries answered (ranks measured) */
  n: number;
  failed: number;
  /** R@K in percent with a bootstrap CI over the answered queries (empty when none was answered) */
  recall: Record<string, ConfidenceInterval>;
}

export interface AttackFigures {
  name: RemoteAttackName;
  threatModel: 'transfer' | 'black-box';
  recipe: AttackName;
  config: Record<string, unknown>;
  tr?: DirectionFigures;
  ir?: DirectionFigures;
  /** clean-correct (rank 0) queries this attack pushed out of the top 1, percent of them */
  attackSuccessRate: { tr?: number; ir?: number };
  /** target queries spent by the attack itself (black-box search), not counting the evaluation queries */
  attackQueries: number;
  wallMs: number;
}

export interface RemoteProbeReport {
  format: 'manyfold-remote-probe/1';
  target: string;
  partial: boolean;
  error?: string;
  encoding: string;
  imageSize: number;
  topK: number;
  ks: number[];
  sample: { images: number; captions: number };
  surrogate: string | null;
  seed: number;
  clean: { tr: DirectionFigures; ir: DirectionFigures };
  attacks: AttackFigures[];
  /** per direction, each query's worst rank over the clean query and every attack of that direction */
  robust: { tr: DirectionFigures; ir: DirectionFigures };
  target_stats: TargetStats;
  wallMs: number;
  /** share of the wall time spent waiting for the target (sum of request latencies / wall time; > 1 with concurrency) */
  targetTimeShare: number;
}

class FatalTargetError extends Error {}

export async function runRemoteProbe(opts: RemoteProbeOptions): Promise<RemoteProbeReport> {
  const t0 = performance.now();
  const { client, queries: qs } = opts;
  const topK = opts.topK ?? 10;
  const ks = [...(opts.ks ?? [1, 5, 10])].filter((k) => k <= topK);
  if (ks.length === 0) throw new Error(`every recall cut-off exceeds topK ${topK}`);
  const seed = opts.seed ?? 0;
  const resamples = opts.resamples ?? 1000;
  const S = qs.size;
  const per = S * S * 3;
  const nI = qs.targetIds.length;
  const nC = qs.captions.length;
  if (qs.images.length !== nI * per) throw new Error(`query images: expected ${nI} x ${S} x ${S} x 3 values, got ${qs.images.length}`);
  if (qs.captionToImage.length !== nC) throw new Error('query captions: captionToImage must have one entry per caption');
  for (const a of opts.attacks) {
    if (REMOTE_ATTACK_INFO[a.name].threatModel === 'transfer' && !opts.surrogate) throw new Error(`attack ${a.name} is a transfer attack: give a surrogate model (--surrogate DIR)`);
    if (a.eot && (a.name !== 'transfer-pgd' || opts.encoding.format !== 'jpeg')) throw new Error(`eot (expectation over JPEG encoding) applies to transfer-pgd with a jpeg encoding, not ${a.name} over ${opts.encoding.format}`);
  }
  const captionGold = qs.captionToImage.map((i) => qs.targetIds[i]);
  let fatal: string | undefined;

  /** rank of gold among the target's hits: 0-based, topK when absent */
  const rankOf = (hits: readonly TargetHit[], gold: string): number => {
    const r = hits.findIndex((h) => h.id === gold);
    return r < 0 ? topK : r;
  };
  const send = async (q: TargetQuery): Promise<TargetHit[] | TargetError> => {
    try {
      return await client.search(q, topK);
    } catch (e) {
      if (e instanceof TargetError) {
        if (e.fatal) throw new FatalTargetError(`${e.kind}: ${e.message}`);
        return e;
      }
      throw e;
    }
  };
  const imageQuery = async (rgb: Uint8Array): Promise<TargetQuery> => ({ kind: 'image', ...(await encodeImage(rgb, S, opts.encoding)) });

  /** ranks of a batch of queries on the target (null = failed) */
  const evaluate = async (stage: AttemptRecord['stage'], direction: 'tr' | 'ir', inputs: readonly TargetQuery[], gold: readonly string[], cleanRanks: readonly (number | null)[] | null, attackQueries: readonly number[] | null): Promise<(number | null)[]> => {
    const out: (number | null)[] = new Array(inputs.length).fill(null);
    const CHUNK = 16;
    for (let s = 0; s < inputs.length; s += CHUNK) {
      const idx = Array.from({ length: Math.min(CHUNK, inputs.length - s) }, (_, j) => s + j);
      const answers = await Promise.all(idx.map((i) => send(inputs[i])));
      idx.forEach((i, j) => {
        const a = answers[j];
        out[i] = a instanceof TargetError ? null : rankOf(a, gold[i]);
        opts.onAttempt?.({
          stage,
          direction,
          query: i,
          input: direction === 'tr' ? qs.labels[i] : (inputs[i] as { text: string }).text,
          gold: gold[i],
          cleanRank: cleanRanks ? cleanRanks[i] : null,
          rank: out[i],
          attackQueries: attackQueries ? attackQueries[i] : 0,
          ...(a instanceof TargetError ? { error: `${a.kind}: ${a.message}` } : {}),
        });
      });
      opts.onProgress?.(`${stage} ${direction}`, Math.min(s + CHUNK, inputs.length), inputs.length);
    }
    return out;
  };

  const figures = (ranks: readonly (number | null)[]): DirectionFigures => {
    const ok = ranks.filter((r): r is number => r !== null);
    const recall: Record<string, ConfidenceInterval> = {};
    if (ok.length > 0) for (const k of ks) recall[`r${k}`] = bootstrapMeanCI(ok.map((r) => (r < k ? 1 : 0)), { resamples, seed, scale: 100 });
    return { n: ok.length, failed: ranks.length - ok.length, recall };
  };

  const cleanImages = await Promise.all(Array.from({ length: nI }, (_, i) => imageQuery(qs.images.subarray(i * per, (i + 1) * per))));
  const cleanTexts: TargetQuery[] = qs.captions.map((text) => ({ kind: 'text', text }));
  // what a fatal target error leaves measured: nothing yet (every rank null) until the clean pass is done
  let cleanTr: (number | null)[] = new Array(nI).fill(null);
  let cleanIr: (number | null)[] = new Array(nC).fill(null);
  let robustTr = cleanTr;
  let robustIr = cleanIr;
  const attackFigures: AttackFigures[] = [];

  // the attacks read the query images as float pixels (none writes into them): built once
  const imagesF = Float32Array.from(qs.images, (v) => v / 255);
  try {
    cleanTr = await evaluate('clean', 'tr', cleanImages, qs.targetIds, null, null);
    cleanIr = await evaluate('clean', 'ir', cleanTexts, captionGold, null, null);
    robustTr = [...cleanTr];
    robustIr = [...cleanIr];

    for (const spec of opts.attacks) {
      const info = REMOTE_ATTACK_INFO[spec.name];
      const started = performance.now();
      const eps = (spec.eps ?? 4) / 255;
      const steps = spec.steps ?? 10;
      const maxQueries = spec.maxQueries ?? 100;
      const attackSeed = seed + 1 + attackFigures.length;
      let result: AttackResult;
      let spent = 0;
      if (info.threatModel === 'transfer') {
        const options =
          info.recipe === 'pgd'
            ? { eps, stepSize: Math.max(eps / 4, 0.5 / 255), steps, seed: attackSeed, ...(spec.eot && opts.encoding.format === 'jpeg' ? { eotJpegQuality: opts.encoding.quality } : {}) }
            : info.recipe === 'coattack'
              ? { eps, steps, seed: attackSeed }
              : { maxWordsChanged: 1, seed: attackSeed };
        const batch: AttackBatch = { images: imagesF, size: S, captions: qs.captions, captionToImage: qs.captionToImage };
        const env: AttackEnv = { encoder: opts.surrogate!.encoder, tokenizer: opts.surrogate!.tokenizer };
        result = await attackByName(info.recipe, options).run(batch, env);
      } else {
        // the target answers the attack's own queries: images go over the wire exactly as the evaluation's do
        const oracle: ScoreOracle = async (oq: readonly OracleQuery[]) => {
          const sent = await Promise.all(oq.map(async (q) => send(q.kind === 'text' ? { kind: 'text', text: q.text } : await imageQuery(quantize(q.pixels)))));
          spent += oq.length;
          // a failed query answers "nothing found": the search treats it as no information, never as success
          return sent.map((a): OracleHit[] => (a instanceof TargetError ? [] : a));
        };
        const batch: AttackBatch =
          info.recipe === 'blackbox-image'
            ? { images: imagesF, size: S, targets: { k: 1, imageGoldIds: qs.targetIds.map((id) => [id]) } }
            : { captions: qs.captions, targets: { k: 1, captionGoldIds: captionGold.map((id) => [id]) } };
        const options = info.recipe === 'blackbox-image' ? { eps, maxQueries, seed: attackSeed } : { maxWordsChanged: 1, maxQueries, seed: attackSeed };
        result = await attackByName(info.recipe, options).run(batch, { oracle });
      }
      opts.onAttackOutput?.(spec.name, result);
      const fig: AttackFigures = { name: spec.name, threatModel: info.threatModel, recipe: info.recipe, config: result.config, attackSuccessRate: {}, attackQueries: spent, wallMs: 0 };
      if (result.images) {
        const adv = quantize(result.images.data);
        const sentImages = await Promise.all(Array.from({ length: nI }, (_, i) => imageQuery(adv.subarray(i * per, (i + 1) * per))));
        const ranks = await evaluate(spec.name, 'tr', sentImages, qs.targetIds, cleanTr, info.threatModel === 'black-box' ? result.images.queries : null);
        fig.tr = figures(ranks);
        fig.attackSuccessRate.tr = successRate(cleanTr, ranks);
        robustTr = robustTr.map((r, i) => worse(r, ranks[i]));
      }
      if (result.captions) {
        const ranks = await evaluate(spec.name, 'ir', result.captions.texts.map((text) => ({ kind: 'text', text })), captionGold, cleanIr, info.threatModel === 'black-box' ? result.captions.queries : null);
        fig.ir = figures(ranks);
        fig.attackSuccessRate.ir = successRate(cleanIr, ranks);
        robustIr = robustIr.map((r, i) => worse(r, ranks[i]));
      }
      fig.wallMs = Math.round(performance.now() - started);
      attackFigures.push(fig);
    }
  } catch (e) {
    if (!(e instanceof FatalTargetError)) throw e;
    fatal = e.message;
  }

  const stats = client.stats();
  const wallMs = Math.round(performance.now() - t0);
  return {
    format: 'manyfold-remote-probe/1',
    target: client.spec.name ?? 'target',
    partial: fatal !== undefined,
    ...(fatal ? { error: fatal } : {}),
    encoding: describeEncoding(opts.encoding),
    imageSize: S,
    topK,
    ks,
    sample: { images: nI, captions: nC },
    surrogate: opts.surrogate?.id ?? null,
    seed,
    clean: { tr: figures(cleanTr), ir: figures(cleanIr) },
    attacks: attackFigures,
    robust: { tr: figures(robustTr), ir: figures(robustIr) },
    target_stats: stats,
    wallMs,
    targetTimeShare: wallMs > 0 ? Math.round((stats.latencyMs.mean * stats.latencyMs.count * 1000) / wallMs) / 1000 : 0,
  };
}

/** the worse (higher) of two ranks; a failed measurement does not erase a measured one */
function worse(a: number | null, b: number | null): number | null {
  if (a === null) return b;
  if (b === null) return a;
  return Math.max(a, b);
}

/** percent of clean top-1 queries that the attack pushed out of the top 1 */
function successRate(clean: readonly (number | null)[], attacked: readonly (number | null)[]): number {
  let base = 0;
  let broken = 0;
  clean.forEach((c, i) => {
    if (c === 0 && attacked[i] !== null) {
      base++;
      if (attacked[i]! > 0) broken++;
    }
  });
  return base === 0 ? 0 : Math.round((1000 * broken) / base) / 10;
}

/** `robust.tr.r1=30,robust.ir.r1=30` -> the bars; figures named by path into the report */
export function parseFailBelow(s: string): { path: string; min: number }[] {
  return s.split(',').map((part) => {
    const m = /^\s*((?:clean|robust)\.(?:tr|ir)\.r\d+)\s*=\s*(-?\d+(?:\.\d+)?)\s*$/.exec(part);
    if (!m) throw new Error(`--fail-below: '${part}' is not FIGURE=NUMBER with FIGURE one of clean|robust . tr|ir . rK (e.g. robust.tr.r1=30)`);
    return { path: m[1], min: Number(m[2]) };
  });
}

/** the bars a report falls below (empty = passes); a figure the report lacks fails, saying so */
export function checkBars(report: RemoteProbeReport, bars: readonly { path: string; min: number }[]): string[] {
  const failed: string[] = [];
  for (const b of bars) {
    const [side, dir, k] = b.path.split('.') as ['clean' | 'robust', 'tr' | 'ir', string];
    const ci = report[side][dir].recall[k];
    if (report[side][dir].n === 0) failed.push(`${b.path}: no query answered`);
    else if (!ci) failed.push(`${b.path}: not measured (cut-offs: ${report.ks.map((x) => `r${x}`).join(', ')})`);
    else if (ci.mean < b.min) failed.push(`${b.path} = ${ci.mean.toFixed(1)} [${ci.lo.toFixed(1)}, ${ci.hi.toFixed(1)}] < ${b.min}`);
  }
  if (report.partial) failed.push(`the probe is partial (${report.error}): bars are not trusted on a partial report`);
  return failed;
}

/** the report as Markdown (what a release gate shows a person) */
export function renderRemoteMarkdown(r: RemoteProbeReport): string {
  const fmt = (d?: DirectionFigures) =>
    d && d.n === 0 ? `no answers (${d.failed} failed)` : d ? r.ks.map((k) => `${d.recall[`r${k}`].mean.toFixed(1)} [${d.recall[`r${k}`].lo.toFixed(1)}, ${d.recall[`r${k}`].hi.toFixed(1)}]`).join(' / ') + (d.failed ? ` (${d.failed} failed)` : '') : '—';
  const head = `| | threat model | TR R@${r.ks.join('/')} | IR R@${r.ks.join('/')} | ASR TR / IR | attack queries |\n|---|---|---|---|---|---|`;
  const rows = [
    `| clean | — | ${fmt(r.clean.tr)} | ${fmt(r.clean.ir)} | | |`,
    ...r.attacks.map((a) => `| ${a.name} | ${a.threatModel} | ${fmt(a.tr)} | ${fmt(a.ir)} | ${a.attackSuccessRate.tr ?? '—'} / ${a.attackSuccessRate.ir ?? '—'} | ${a.attackQueries} |`),
    `| **robust (worst case)** | | ${fmt(r.robust.tr)} | ${fmt(r.robust.ir)} | | |`,
  ];
  const lat = r.target_stats.latencyMs;
  return [
    `# Robust recall of ${r.target}${r.partial ? ' (PARTIAL)' : ''}`,
    '',
    r.partial ? `**Partial report**: ${r.error}\n` : '',
    `${r.sample.images} image queries, ${r.sample.captions} caption queries; top-${r.topK}; images sent as ${r.imageSize}x${r.imageSize} ${r.encoding}; transfer surrogate: ${r.surrogate ?? 'none'}; seed ${r.seed}. R@K in percent with 95% bootstrap intervals.`,
    '',
    head,
    ...rows,
    '',
    `Target: ${r.target_stats.requests} requests (${r.target_stats.retries} retries), latency p50 ${lat.p50.toFixed(0)} ms, p99 ${lat.p99.toFixed(0)} ms; wall ${(r.wallMs / 1000).toFixed(1)} s.`,
    '',
  ].join('\n');
}
