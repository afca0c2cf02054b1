/**
 * Shared types of the attack package.
 *
 * An attack is composed, TextAttack-style, of four parts, each from its own folder:
 * - a goal (goals/): what counts as success for retrieval (the gold item leaves the top-K of a gallery, or the
 *   similarity to the paired item drops) and, for the white-box inner loops, the embedding objective to maximise;
 * - constraints (constraints/): budgets. Pixel constraints project a perturbation (L-inf / L2 ball, pixel range);
 *   text constraints filter candidate word transformations (stop words, words changed); a query budget caps
 *   black-box queries;
 * - a transformation (transformations/): a pixel step, a WordNet synonym swap, a character edit, a rescale;
 * - a search (search/): PGD, greedy by word importance, Square-style random search.
 * A published attack is a recipe (recipes/) of a few lines composing these; registry.ts names them.
 *
 * Units: pixels are float32 in [0,1] (row-major [N,S,S,3]); eps and step sizes are in the same [0,1] units
 * (the CLI takes /255 units: see `budgetFrom255`). Embeddings are L2-normalised rows, so cosine = dot product.
 */
import type { DualEncoder, Tokenizer } from '../model/types.js';
import type { ScoreOracle } from './blackbox/oracle.js';

export type Norm = 'linf' | 'l2';

export type AttackName = 'pgd' | 'text' | 'charedit' | 'coattack' | 'sga' | 'blackbox-image' | 'blackbox-text';

export const ATTACK_NAMES: readonly AttackName[] = ['pgd', 'text', 'charedit', 'coattack', 'sga', 'blackbox-image', 'blackbox-text'];

/** A gallery of L2-normalised embeddings (row-major [count, dim]) that a query is ranked against. */
export interface Gallery {
  embeddings: Float32Array;
  count: number;
  dim: number;
}

/** White-box retrieval targets for one query side: the gallery and, per query, the gold gallery rows. */
export interface RetrievalTarget {
  gallery: Gallery;
  /** gold[q] = gallery rows that are correct for query q (image query: its captions; caption query: its image) */
  gold: readonly (readonly number[])[];
}

/**
 * What success means. With `imageQueries` / `textQueries` the goal is "every gold item leaves the top-k"
 * (white-box, against the gallery embeddings); with `imageGoldIds` / `captionGoldIds` the black-box goal is the
 * same against the oracle's ranked ids. Without targets the goal is "the similarity to the paired item drops by
 * at least minDrop" (default 0: any drop).
 */
export interface AttackTargets {
  /** top-k cut-off of the retrieval goal (default 1) */
  k?: number;
  imageQueries?: RetrievalTarget;
  textQueries?: RetrievalTarget;
  /** black-box: gold ids (as the oracle returns them) per image query / per caption query */
  imageGoldIds?: readonly (readonly (string | number)[])[];
  captionGoldIds?: readonly (readonly (string | number)[])[];
  /** similarity-drop goal: required drop of the mean paired cosine similarity (default 0) */
  minDrop?: number;
}

/**
 * One batch of queries to attack. Image attacks read `images`; text attacks read `captions`; multimodal attacks
 * read both plus the pairing. The pairing (`captionToImage`) also feeds the paired terms of the objectives
 * (image PGD away from its captions' embeddings; text swaps lowering similarity to the paired image).
 * Large batches are processed internally in chunks of the attack's `batchSize`.
 */
export interface AttackBatch {
  /** row-major [N,S,S,3] float32 pixels in [0,1] */
  images?: Float32Array;
  /** image edge S (defaults to the model's input size) */
  size?: number;
  /** caption queries, or the captions paired with `images` */
  captions?: readonly string[];
  /** caption i describes image captionToImage[i] of this batch; -1 = unpaired */
  captionToImage?: ArrayLike<number>;
  targets?: AttackTargets;
}

/** What an attack runs against: a white-box model (+ tokenizer), or a black-box oracle. */
export interface AttackEnv {
  encoder?: DualEncoder;
  tokenizer?: Tokenizer;
  oracle?: ScoreOracle;
}

/** Per-image outcome. */
export interface ImageAttackOutput {
  /** adversarial pixels, row-major [count, size, size, 3] in [0,1] */
  data: Float32Array;
  size: number;
  count: number;
  success: boolean[];
  /** final value of the search objective per image (higher = stronger); black-box: the oracle-derived score */
  objective: number[];
  /** achieved perturbation norms per image (pixel units [0,1]) */
  linf: number[];
  l2: number[];
  /** model forward passes (white-box) or oracle queries (black-box) spent per image */
  queries: number[];
}

/** Per-caption outcome. */
export interface TextAttackOutput {
  texts: string[];
  original: string[];
  success: boolean[];
  objective: number[];
  wordsChanged: number[];
  /** candidate captions scored (white-box) or oracle queries (black-box) per caption */
  queries: number[];
}

/** The result of one attack run: what eval (robust recall, ASR, worst-case cascade, CIs) consumes. */
export interface AttackResult {
  attack: AttackName;
  threatModel: 'white-box' | 'black-box';
  /** resolved configuration (every default filled in) and the seed: rerunning with both reproduces the output */
  config: Record<string, unknown>;
  seed: number;
  /** how success was judged, e.g. 'top1-leave' or 'similarity-drop>0' */
  goal: string;
  images?: ImageAttackOutput;
  captions?: TextAttackOutput;
  /** total queries (sum of the per-item counts) */
  queries: number;
  wallMs: number;
}

export interface Attack {
  readonly name: AttackName;
  readonly threatModel: 'white-box' | 'black-box';
  readonly seed: number;
  readonly config: Readonly<Record<string, unknown>>;
  run(batch: AttackBatch, env: AttackEnv): Promise<AttackResult>;
}

/** Convert a CLI budget in /255 units to pixel units. */
export function budgetFrom255(b: { eps: number; stepSize?: number }): { eps: number; stepSize?: number } {
  return { eps: b.eps / 255, ...(b.stepSize !== undefined ? { stepSize: b.stepSize / 255 } : {}) };
}
