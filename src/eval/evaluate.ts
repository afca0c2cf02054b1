import type { DatasetSplit } from '../data/types.js';
import { sceneKey } from '../data/scenes/match.js';
import type { Encoder } from '../model/encoder.js';
import { similarityMatrix } from '../model/encoder.js';
import { bootstrapMeanCI } from './bootstrap.js';
import { computeRecall, matchesFromKeys, type DirectionRecall, type RecallResult } from './recall.js';

export interface RecallTriple {
  r1: number;
  r5: number;
  r10: number;
}

export interface DirectionSummary extends RecallTriple {
  /** 95% percentile-bootstrap interval of R@1 over queries */
  r1ci: [number, number];
}

export interface CleanEvalSummary {
  tr: DirectionSummary;
  ir: DirectionSummary;
  semantic?: { tr: RecallTriple; ir: RecallTriple };
  protocol: string;
  split: string;
  nImages: number;
  nTexts: number;
  model: string;
  seconds: number;
}

export interface CleanEvalResult {
  summary: CleanEvalSummary;
  recall: RecallResult;
  sims: Float32Array;
  imageEmb: Float32Array;
  textEmb: Float32Array;
}

export const CLEAN_PROTOCOL =
  'Karpathy ITR protocol: TR = image->text, hit@K if any ground-truth caption is in the top K; IR = text->image; ' +
  'percent; ties count against the model; gallery = the whole split; 95% CI = percentile bootstrap over queries (1000 resamples, seed 0)';

export function triple(d: DirectionRecall): RecallTriple {
  return { r1: round2(d.recall[1]), r5: round2(d.recall[5]), r10: round2(d.recall[10]) };
}

export function round2(x: number): number {
  return Math.round(x * 100) / 100;
}

function withCi(d: DirectionRecall): DirectionSummary {
  const ci = bootstrapMeanCI(d.hits[1], { seed: 0, scale: 100 });
  return { ...triple(d), r1ci: [round2(ci.lo), round2(ci.hi)] };
}

/** Scene-graph equality as an image predicate, when the split carries scene graphs. */
export function sceneMatcher(split: DatasetSplit): ((a: number, b: number) => boolean) | undefined {
  if (!split.scenes || split.scenes.every((s) => !s)) return undefined;
  return matchesFromKeys(split.scenes.map((s) => (s ? sceneKey(s) : undefined)));
}

/** Clean retrieval over one split: embeds every image and caption, scores all pairs, computes recall. */
export async function evaluateClean(encoder: Encoder, split: DatasetSplit): Promise<CleanEvalResult> {
  const t0 = performance.now();
  if (split.size !== encoder.imageSize) {
    throw new Error(`split ${split.name} holds ${split.size}px images but the model expects ${encoder.imageSize}px`);
  }
  const imageEmb = await encoder.embedImagesMatrix(split.images, split.count);
  const textEmb = await encoder.embedTextsMatrix(split.captions);
  const sims = similarityMatrix(imageEmb, textEmb, encoder.dim);
  const matches = sceneMatcher(split);
  const recall = computeRecall(sims, split.count, split.captions.length, split, { matches });
  const summary: CleanEvalSummary = {
    tr: withCi(recall.tr),
    ir: withCi(recall.ir),
    ...(recall.semantic ? { semantic: { tr: triple(recall.semantic.tr), ir: triple(recall.semantic.ir) } } : {}),
    protocol: CLEAN_PROTOCOL,
    split: split.name,
    nImages: split.count,
    nTexts: split.captions.length,
    model: encoder.version,
    seconds: round2((performance.now() - t0) / 1000),
  };
  return { summary, recall, sims, imageEmb, textEmb };
}

export function formatCleanSummary(s: CleanEvalSummary): string {
  const row = (name: string, d: RecallTriple & { r1ci?: [number, number] }) =>
    `${name.padEnd(18)} R@1 ${d.r1.toFixed(2).padStart(6)}${d.r1ci ? ` [${d.r1ci[0].toFixed(1)}, ${d.r1ci[1].toFixed(1)}]` : ''}  R@5 ${d.r5.toFixed(2).padStart(6)}  R@10 ${d.r10.toFixed(2).padStart(6)}`;
  const lines = [
    `split ${s.split}: ${s.nImages} images, ${s.nTexts} captions, model ${s.model}`,
    row('image->text (TR)', s.tr),
    row('text->image (IR)', s.ir),
  ];
  if (s.semantic) {
    lines.push(row('semantic TR', s.semantic.tr), row('semantic IR', s.semantic.ir));
  }
  return lines.join('\n');
}
