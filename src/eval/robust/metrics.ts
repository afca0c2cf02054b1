/**
 * Robust-recall metrics from per-query ranks, shared by every probe and evaluation: R@K with percentile-bootstrap
 * intervals, attack success rate, and the per-query worst case over attacks.
 *
 * A rank is 0-based (0 = the gold answer came first); `null` marks a query whose measurement failed (a remote
 * target's error after its retries): it is counted apart, never as a hit or a miss.
 */
import { bootstrapMeanCI, type ConfidenceInterval } from '../bootstrap.js';

export type Rank = number | null;

export interface DirectionFigures {
  /** queries measured */
  n: number;
  /** queries whose measurement failed */
  failed: number;
  /** `r1`, `r5`, ...: recall in percent with its 95% interval over the measured queries (empty when none) */
  recall: Record<string, ConfidenceInterval>;
}

export interface BootstrapSettings {
  seed: number;
  resamples: number;
}

export function recallFigures(ranks: readonly Rank[], ks: readonly number[], b: BootstrapSettings): DirectionFigures {
  const ok = ranks.filter((r): r is number => r !== null);
  const recall: Record<string, ConfidenceInterval> = {};
  if (ok.length > 0) for (const k of ks) recall[`r${k}`] = bootstrapMeanCI(ok.map((r) => (r < k ? 1 : 0)), { resamples: b.resamples, seed: b.seed, scale: 100 });
  return { n: ok.length, failed: ranks.length - ok.length, recall };
}

/** the worse (higher) of two ranks; a failed measurement does not erase a measured one */
export function worseRank(a: Rank, b: Rank): Rank {
  if (a === null) return b;
  if (b === null) return a;
  return Math.max(a, b);
}

/** per query, the worst rank over the lists: a hit only when a hit under every attack (AutoAttack-style) */
export function worstCase(lists: readonly (readonly Rank[])[]): Rank[] {
  if (lists.length === 0) throw new Error('worst case over no attacks');
  return lists[0].map((_, q) => lists.reduce<Rank>((w, l) => worseRank(w, l[q]), null));
}

export interface SuccessRate {
  /** percent of the clean hits at k that the attack turned into misses (0 when there was no clean hit) */
  asr: number;
  /** clean hits at k measured under the attack too */
  base: number;
}

/** SGA's attack success rate: among queries that were a hit at k clean, the share that miss under attack */
export function successRate(clean: readonly Rank[], attacked: readonly Rank[], k: number): SuccessRate {
  if (clean.length !== attacked.length) throw new Error(`success rate: ${clean.length} clean ranks vs ${attacked.length} attacked`);
  let base = 0;
  let broken = 0;
  clean.forEach((c, i) => {
    const a = attacked[i];
    if (c === null || a === null || c >= k) return;
    base++;
    if (a >= k) broken++;
  });
  return { asr: base === 0 ? 0 : Math.round((1000 * broken) / base) / 10, base };
}
