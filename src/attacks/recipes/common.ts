/**
 * Recipe plumbing: option resolution with validation, and `defineAttack`, which wraps a recipe body with the
 * context, timing and the result envelope, so a recipe file is just its composition.
 */
import type { Attack, AttackBatch, AttackEnv, AttackName, AttackResult, ImageAttackOutput, Norm, TextAttackOutput } from '../types.js';
import { AttackContext, assembleResult } from '../pipeline.js';
import type { WordImportance } from '../search/greedy-word.js';
import type { ObjectiveWeights } from '../goals/objective.js';
import { defaultTextConstraints, type TextConstraint } from '../constraints/text.js';
import { labelPreserving, type LabelLexicon } from '../constraints/labels.js';

/** Image PGD budget (pixel units [0,1]). Defaults are the public Co-Attack / SGA code's. */
export interface PgdBudget {
  eps: number;
  norm: Norm;
  steps: number;
  stepSize: number;
  randomStart: boolean;
  /** return the best iterate per image (never weaker with more steps) */
  keepBest: boolean;
  /** images per tensor batch */
  batchSize: number;
}

export const DEFAULT_PGD: PgdBudget = { eps: 2 / 255, norm: 'linf', steps: 10, stepSize: 0.5 / 255, randomStart: true, keepBest: true, batchSize: 64 };

export interface WordBudget {
  maxWordsChanged: number;
  wir: WordImportance;
  /** stop words are never changed (NLTK English list) */
  skipStopWords: boolean;
  /** forbid substitutes that change a closed-vocabulary label (constraints/labels.ts); absent = no such check */
  labels?: LabelLexicon;
}

export const DEFAULT_WORDS: WordBudget = { maxWordsChanged: 1, wir: 'delete', skipStopWords: true };

export interface SeedOption {
  seed: number;
}

export function resolvePgd(o: Partial<PgdBudget> = {}): PgdBudget {
  const b = { ...DEFAULT_PGD, ...defined(o) };
  check(b.eps >= 0 && Number.isFinite(b.eps), `eps must be finite and >= 0 (pixel units; 2/255 = ${2 / 255}), got ${b.eps}`);
  check(b.eps <= 1, `eps is in pixel units [0,1] (the CLI takes /255 units): got ${b.eps}`);
  check(b.norm === 'linf' || b.norm === 'l2', `norm must be 'linf' or 'l2', got ${String(b.norm)}`);
  check(Number.isInteger(b.steps) && b.steps >= 0, `steps must be an integer >= 0, got ${b.steps}`);
  check(b.stepSize >= 0 && Number.isFinite(b.stepSize), `stepSize must be finite and >= 0, got ${b.stepSize}`);
  check(Number.isInteger(b.batchSize) && b.batchSize >= 1, `batchSize must be a positive integer, got ${b.batchSize}`);
  return b;
}

export function resolveWords(o: Partial<WordBudget> = {}): WordBudget {
  const b = { ...DEFAULT_WORDS, ...defined(o) };
  check(Number.isInteger(b.maxWordsChanged) && b.maxWordsChanged >= 0, `maxWordsChanged must be an integer >= 0, got ${b.maxWordsChanged}`);
  check(['delete', 'mask', 'random', 'none'].includes(b.wir), `wir must be delete|mask|random|none, got ${String(b.wir)}`);
  return b;
}

/** the word-level constraints of a budget: the defaults, plus label preservation when a lexicon is given */
export function wordConstraints(w: WordBudget): TextConstraint[] {
  const c = defaultTextConstraints(w.maxWordsChanged, w.skipStopWords ? undefined : new Set());
  if (w.labels) c.push(labelPreserving(w.labels));
  return c;
}

/** a budget as recorded in an attack's config (the lexicon by name) */
export function wordConfig(w: WordBudget): Omit<WordBudget, 'labels'> & { labels: string | null } {
  return { ...w, labels: w.labels?.name ?? null };
}

export function resolveWeights(w: Partial<ObjectiveWeights> | undefined, dflt: ObjectiveWeights): ObjectiveWeights {
  const r = { ...dflt, ...defined(w ?? {}) };
  check(Number.isFinite(r.clean) && Number.isFinite(r.paired), 'objective weights must be finite');
  return r;
}

export function resolveSeed(seed: number | undefined): number {
  const s = seed ?? 0;
  check(Number.isInteger(s), `seed must be an integer, got ${s}`);
  return s;
}

export function defineAttack(
  name: AttackName,
  threatModel: 'white-box' | 'black-box',
  config: Record<string, unknown>,
  seed: number,
  body: (ctx: AttackContext) => Promise<{ images?: ImageAttackOutput; captions?: TextAttackOutput; goal: string }>,
): Attack {
  const frozen = Object.freeze({ ...config, seed });
  return {
    name,
    threatModel,
    seed,
    config: frozen,
    async run(batch: AttackBatch, env: AttackEnv): Promise<AttackResult> {
      const started = performance.now();
      const ctx = new AttackContext(batch, env);
      const out = await body(ctx);
      return assembleResult({ attack: name, threatModel, config: { ...frozen }, seed, started, ...out });
    },
  };
}

function defined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

function check(ok: boolean, msg: string): void {
  if (!ok) throw new Error(`attack config: ${msg}`);
}
