/**
 * Query-only access to a deployed retrieval system (no weights, no gradients).
 *
 * A ScoreOracle takes a batch of queries (images or texts) and returns, per query, the ranked hits of the
 * index: ids best first, with scores when the system exposes them. The attack never sees anything else.
 * CountingOracle wraps one with per-item query counting and a hard per-item budget.
 */
import { tf } from '../../engine/tf.js';
import { takeData } from '../../engine/read.js';
import type { DualEncoder, Tokenizer } from '../../model/types.js';
import { QueryBudget } from '../constraints/query-budget.js';
import { embedImageRows, embedTextRows } from '../util/embed.js';

export type OracleQuery = { kind: 'image'; pixels: Float32Array; size: number } | { kind: 'text'; text: string };

export interface OracleHit {
  id: string | number;
  /** similarity score, when the system returns one (higher = more similar) */
  score?: number;
}

/** ranked hits per query, best first */
export type ScoreOracle = (queries: readonly OracleQuery[]) => Promise<OracleHit[][]>;

/** Per-item query counting over an oracle; `query` throws rather than exceed an item's budget. */
export class CountingOracle {
  readonly budget: QueryBudget;
  calls = 0;

  constructor(
    readonly oracle: ScoreOracle,
    maxQueriesPerItem: number,
    nItems: number,
  ) {
    this.budget = new QueryBudget(maxQueriesPerItem, nItems);
  }

  async query(queries: readonly OracleQuery[], items: readonly number[]): Promise<OracleHit[][]> {
    if (queries.length !== items.length) throw new Error('CountingOracle: one item per query');
    if (queries.length === 0) return [];
    for (const it of items) this.budget.spend(it, 1);
    this.calls++;
    const out = await this.oracle(queries);
    if (out.length !== queries.length) throw new Error(`oracle returned ${out.length} results for ${queries.length} queries`);
    return out;
  }
}

/**
 * The attacker's view of one response for a query whose correct results are `gold`:
 * - rank: 0-based position of the best gold hit among the returned hits (hits.length when none is returned);
 * - success: rank >= k (every gold item left the top-k);
 * - score (higher = stronger attack): with scores, minus the best gold score (+ 1e3*rank so leaving the list
 *   dominates); rank only, the rank itself.
 */
export function judgeHits(hits: readonly OracleHit[], gold: ReadonlySet<string | number>, k: number): { rank: number; success: boolean; score: number } {
  let rank = hits.length;
  for (let r = 0; r < hits.length; r++) {
    if (gold.has(hits[r].id)) {
      rank = r;
      break;
    }
  }
  const hasScores = hits.length > 0 && hits.every((h) => typeof h.score === 'number');
  let score: number;
  if (rank < hits.length && hasScores) score = -(hits[rank].score as number) + 1e3 * rank;
  else if (hasScores) score = 1e3 * hits.length + 2; // the gold left the returned list: beats any in-list position
  else score = rank;
  return { rank, success: rank >= k, score };
}

export interface LocalOracleOptions {
  encoder: DualEncoder;
  tokenizer?: Tokenizer;
  /** gallery embeddings (row-major [count, dim], L2-normalised) */
  gallery: Float32Array;
  /** ids of the gallery rows (default: row numbers) */
  ids?: readonly (string | number)[];
  topK: number;
  /** return scores (default true); false gives a rank-only oracle */
  withScores?: boolean;
}

/**
 * An in-process oracle over a model and a gallery: what a deployed index returns (top-K ids and scores).
 * Used by tests, benchmarks and probes against a locally loaded model. Pessimistic ties as in eval/recall.ts
 * are not needed here: hits are sorted by score, ties by row.
 */
export function localOracle(opts: LocalOracleOptions): ScoreOracle {
  const E = opts.encoder.config.embedDim;
  const G = opts.gallery.length / E;
  return async (queries) => {
    const out: OracleHit[][] = [];
    const imgs = queries.map((q, i) => [q, i] as const).filter(([q]) => q.kind === 'image');
    const txts = queries.map((q, i) => [q, i] as const).filter(([q]) => q.kind === 'text');
    const rows = new Map<number, Float32Array>();
    if (imgs.length > 0) {
      const size = (imgs[0][0] as { size: number }).size;
      const per = size * size * 3;
      const data = new Float32Array(imgs.length * per);
      imgs.forEach(([q], k) => data.set((q as { pixels: Float32Array }).pixels, k * per));
      const emb = await embedImageRows(opts.encoder, data, imgs.length, size);
      imgs.forEach(([, i], k) => rows.set(i, emb.subarray(k * E, (k + 1) * E)));
    }
    if (txts.length > 0) {
      if (!opts.tokenizer) throw new Error('localOracle: text queries need a tokenizer');
      const emb = await embedTextRows(opts.encoder, opts.tokenizer, txts.map(([q]) => (q as { text: string }).text));
      txts.forEach(([, i], k) => rows.set(i, emb.subarray(k * E, (k + 1) * E)));
    }
    const Q = queries.length;
    const qm = new Float32Array(Q * E);
    for (let i = 0; i < Q; i++) qm.set(rows.get(i)!, i * E);
    const sims = await takeData(tf.tidy(() => tf.matMul(tf.tensor2d(qm, [Q, E]), tf.tensor2d(opts.gallery, [G, E]), false, true)));
    for (let i = 0; i < Q; i++) {
      const idx = Array.from({ length: G }, (_, j) => j);
      const s = sims.subarray(i * G, (i + 1) * G);
      idx.sort((a, b) => s[b] - s[a] || a - b);
      out.push(
        idx.slice(0, opts.topK).map((j) => ({ id: opts.ids ? opts.ids[j] : j, ...(opts.withScores === false ? {} : { score: s[j] }) })),
      );
    }
    return out;
  };
}
