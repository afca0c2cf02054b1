/**
 * Which variables a fine-tune trains.
 *
 * `--freeze-blocks N` (N >= 1) freezes, in BOTH towers, everything before block N: the image tower's conv stem,
 * patch embedding, class token, position embedding and ln_pre (CLIP), the text tower's token and position
 * embeddings, and blocks 0..N-1. Why everything before block N and not the blocks alone: a trainable variable
 * in front of a frozen block would need the gradient to flow back through that block, which is the backward
 * work freezing is meant to skip. Final LayerNorms, projections and the logit scale stay trainable.
 *
 * Frozen variables are simply left out of the list handed to tf.variableGrads: the tape then never calls the
 * backward of any op that only frozen variables feed, and the first trainable block's input gradient is skipped
 * too (engine/ops.ts customOp gradients are lazy per input). Their forward activations are still recorded while
 * the tape is on (tfjs tapes every op of the differentiated function), so freezing saves gradient and optimizer
 * memory and backward time, not forward activation memory.
 */
import type { DualEncoder, ModelConfig } from '../src/model/types.js';

/** the tower embeddings: variables that sit before block 0 */
const EMBEDDING = /^(image\.(stem\.\d+\.[wb]|patch\.[wb]|cls|pos|lnpre\.[gb])|text\.(tok|pos))$/;
const BLOCK = /^(image|text)\.blocks\.(\d+)\./;

/** true when `name` is frozen by --freeze-blocks n */
export function isFrozen(name: string, freezeBlocks: number): boolean {
  if (freezeBlocks <= 0) return false;
  if (EMBEDDING.test(name)) return true;
  const m = BLOCK.exec(name);
  return m !== null && Number(m[2]) < freezeBlocks;
}

export class FreezeError extends Error {
  override name = 'FreezeError';
}

/**
 * Throws a FreezeError naming the flag when --freeze-blocks cannot apply to this model: it needs a pretrained
 * starting point (frozen random weights never learn), and at most every block of each tower that trains.
 * `imageOnly`: the method trains the image tower only (TeCoA, FARE), so only the image depth bounds N.
 */
export function validateFreezeBlocks(n: number, config: ModelConfig, o: { imageOnly: boolean; fromInit: boolean }): void {
  if (!Number.isInteger(n) || n < 0) throw new FreezeError(`--freeze-blocks must be an integer >= 0, got ${n}`);
  if (n === 0) return;
  if (!o.fromInit) throw new FreezeError(`--freeze-blocks ${n} needs --init MODEL: frozen blocks of a randomly initialised model would never learn`);
  const towers: [string, number][] = [['image', config.image.depth]];
  if (!o.imageOnly) towers.push(['text', config.text.depth]);
  for (const [tower, depth] of towers) {
    if (n > depth) throw new FreezeError(`--freeze-blocks ${n} exceeds the ${tower} tower's depth ${depth} (${config.preset}): at most ${Math.min(...towers.map((t) => t[1]))}`);
  }
}

/**
 * Names of the variables a run trains, in the model's order: everything except the frozen ones, and the image
 * tower only for TeCoA / FARE (their papers freeze the text tower and the temperature).
 */
export function trainableNames(model: DualEncoder, o: { freezeBlocks: number; imageOnly: boolean }): string[] {
  return [...model.variables.keys()].filter((name) => !(o.imageOnly && !name.startsWith('image.')) && !isFrozen(name, o.freezeBlocks));
}
