/**
 * Backend parity of the dual encoder's training step: the tiny preset's loss (training/losses/clip.ts
 * multiPositiveInfoNce, the trainer's loss) and the gradient of every variable, computed on the active backend
 * from fixed seeds, read back with one batched async download (webgpu in Node has no synchronous read).
 * Shared by test/engine/webgpu.test.ts and scripts/gpu-check.ts, so CI and a GPU machine check the same thing.
 */
import * as tf from '../src/engine/tf.js';
import { createDualEncoder, modelConfigFromPreset } from '../src/model/dual-encoder.js';
import { multiPositiveInfoNce } from './losses/clip.js';
import { Rng } from '../src/util/rng.js';
import { opCacheTensorCount } from '../src/engine/ops.js';

export const PARITY_VOCAB = 300;
export const PARITY_BATCH = 6;
export const PARITY_TEXT_LEN = 32;

export interface StepSnapshot {
  loss: number;
  /** gradient of each model variable, by the model's variable name */
  grads: Map<string, Float32Array>;
  /** tf.memory().numTensors after the step minus before it (0 = nothing leaked) */
  tensorDelta: number;
}

/** Loss and gradients of one dual-encoder step on the active backend (model seed 42, input seed 5). */
export async function dualEncoderStep(): Promise<StepSnapshot> {
  const rng = new Rng(5);
  const config = modelConfigFromPreset('tiny', PARITY_VOCAB);
  const s = config.image.size;
  const px = Float32Array.from({ length: PARITY_BATCH * s * s * 3 }, () => rng.next());
  const ids = new Int32Array(PARITY_BATCH * PARITY_TEXT_LEN);
  for (let b = 0; b < PARITY_BATCH; b++) {
    const len = 3 + rng.int(20);
    ids[b * PARITY_TEXT_LEN] = 1;
    for (let j = 1; j < len - 1; j++) ids[b * PARITY_TEXT_LEN + j] = 3 + rng.int(PARITY_VOCAB - 3);
    ids[b * PARITY_TEXT_LEN + len - 1] = 2;
  }
  const owner = Int32Array.from({ length: PARITY_BATCH }, (_, i) => i);
  const model = createDualEncoder(config, 42);
  // op-cached constants (ops.ts) appear on a backend's first step and stay: not a leak
  const before = tf.memory().numTensors - opCacheTensorCount();
  const x = tf.tensor4d(px, [PARITY_BATCH, s, s, 3]);
  const idsT = tf.tensor2d(ids, [PARITY_BATCH, PARITY_TEXT_LEN], 'int32');
  const names = [...model.variables.keys()];
  const vars = [...model.variables.values()];
  const { value, grads } = tf.variableGrads(
    () => multiPositiveInfoNce(model.imageTower(x), model.textTower(idsT), owner, model.logitScale()),
    vars,
  );
  const ordered = vars.map((v) => grads[v.name]);
  try {
    const [lossV, ...gradVs] = await Promise.all([value.data(), ...ordered.map((g) => g.data())]);
    tf.dispose([value, ...ordered, x, idsT]);
    const tensorDelta = tf.memory().numTensors - opCacheTensorCount() - before;
    return {
      loss: lossV[0],
      grads: new Map(names.map((n, i) => [n, Float32Array.from(gradVs[i] as Float32Array)])),
      tensorDelta,
    };
  } finally {
    tf.dispose([value, ...ordered, x, idsT]);
    model.dispose();
  }
}

export interface ParityReport {
  lossAbsDiff: number;
  /** largest |a - b| over every gradient element */
  gradMaxAbsDiff: number;
  /** largest per-variable relative L2 error ||a - b|| / ||b|| */
  gradMaxRelErr: number;
  worstVariable: string;
}

/** Compare a step on some backend (a) with the reference (b, the cpu backend). */
export function compareSteps(a: StepSnapshot, b: StepSnapshot): ParityReport {
  let gradMaxAbsDiff = 0;
  let gradMaxRelErr = 0;
  let worstVariable = '';
  for (const [name, ref] of b.grads) {
    const got = a.grads.get(name);
    if (!got || got.length !== ref.length) throw new Error(`gradient of ${name} missing or of a different size`);
    let num = 0;
    let den = 0;
    for (let i = 0; i < ref.length; i++) {
      const d = got[i] - ref[i];
      num += d * d;
      den += ref[i] * ref[i];
      gradMaxAbsDiff = Math.max(gradMaxAbsDiff, Math.abs(d));
    }
    const rel = Math.sqrt(num) / (Math.sqrt(den) + 1e-30);
    if (rel > gradMaxRelErr) {
      gradMaxRelErr = rel;
      worstVariable = name;
    }
  }
  return { lossAbsDiff: Math.abs(a.loss - b.loss), gradMaxAbsDiff, gradMaxRelErr, worstVariable };
}
