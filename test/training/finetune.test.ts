/**
 * What makes fine-tuning large imported models feasible, on a tiny real DualEncoder (16 px, width 32, two blocks
 * per tower) on wasm:
 * - --freeze-blocks: frozen weights (embeddings + first N blocks of both towers) stay bit-identical, the others
 *   train, no AdamW moments exist for frozen ones, and a run killed and resumed ends bit-identical;
 * - --grad-accum N: the applied gradient is the MEAN of the N micro-batch gradients, each micro-batch's loss being
 *   the contrastive loss within that micro-batch (checked against computing them separately, and shown to differ
 *   from the gradient of one batch of all N micro-batches); numTensors stays flat across steps;
 * - the logit scale's log is clamped to [0, ln 100] after every optimizer step (CLIP's rule);
 * - flags are validated with errors that name them.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command, CommanderError } from 'commander';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registerTrainCommand } from '../../src/cli/commands/train.js';
import { tf } from '../../src/engine/tf.js';
import { initBackend } from '../../src/engine/backend.js';
import { opCacheTensorCount } from '../../src/engine/ops.js';
import { ConfigError, loadConfig, trainSchema, type TrainConfig } from '../../src/config.js';
import { loadDataset } from '../../src/data/load.js';
import { generateScenes } from '../../src/data/scenes/generate.js';
import type { DatasetSplit } from '../../src/data/types.js';
import { createDualEncoder } from '../../src/model/dual-encoder.js';
import { buildTokenizer } from '../../src/model/tokenizer.js';
import type { DualEncoder, ModelConfig, Tokenizer } from '../../src/model/types.js';
import { Rng } from '../../src/util/rng.js';
import { epochBatches, gatherPixels, sampleCaptions, stackIdsBucketed, textTowerBucketed } from '../../training/batches.js';
import { readCheckpoint } from '../../training/checkpoint.js';
import { FreezeError, isFrozen, trainableNames, validateFreezeBlocks } from '../../training/freeze.js';
import { multiPositiveInfoNce } from '../../training/losses/clip.js';
import { CHECKPOINT_FILE, trainModel, type StepInfo, type TrainerState } from '../../training/trainer.js';
import { warmupCosine } from '../../training/schedule.js';

let dir: string;
let split: DatasetSplit;
let tokenizer: Tokenizer;
let init: DualEncoder;

const config2 = (vocabSize: number): ModelConfig => ({
  preset: 'test-tiny2',
  embedDim: 32,
  image: { size: 16, patch: 8, width: 32, depth: 2, heads: 2, mlpRatio: 2 },
  text: { width: 32, depth: 2, heads: 2, mlpRatio: 2, maxLen: 24, vocabSize },
  initLogitScale: Math.log(1 / 0.07),
});

beforeAll(async () => {
  await initBackend('wasm');
  dir = mkdtempSync(join(tmpdir(), 'mf-finetune-'));
  const g = await generateScenes({ out: join(dir, 'scenes'), train: 16, val: 0, test: 0, seed: 21 });
  split = await loadDataset(g.file, { size: 16, split: 'train', cacheDir: join(dir, 'cache') });
  tokenizer = buildTokenizer(split.captions, { maxLen: 24 });
  init = createDualEncoder(config2(tokenizer.vocabSize), 4);
});

afterAll(() => {
  init.dispose();
  rmSync(dir, { recursive: true, force: true });
});

const cfg = (o: Partial<TrainConfig>): TrainConfig => trainSchema.parse({ batch: 4, epochs: 1, lr: 3e-3, warmupFraction: 0, minLrRatio: 1, checkpointEvery: 1, ...o });
const snapshot = (m: DualEncoder) => new Map([...m.variables].map(([k, v]) => [k, Float32Array.from(v.dataSync() as Float32Array)]));
const bitEqual = (a: Float32Array, b: Float32Array) => a.length === b.length && a.every((x, i) => Object.is(x, b[i]));

async function run(name: string, config: TrainConfig, extra: Partial<Parameters<typeof trainModel>[0]> = {}) {
  const steps: StepInfo[] = [];
  const r = await trainModel({ out: join(dir, name), train: split, config, seed: 5, quiet: true, init: { model: init, tokenizer, id: 'tiny2' }, onStep: (i) => steps.push(i), ...extra });
  return { r, steps };
}

describe('--freeze-blocks', () => {
  it('names what it freezes: the embeddings and blocks 0..N-1 of both towers, nothing with N = 0', () => {
    for (const n of ['image.patch.w', 'image.patch.b', 'image.cls', 'image.pos', 'image.lnpre.g', 'image.stem.0.w', 'text.tok', 'text.pos', 'image.blocks.0.attn.qkv.w', 'text.blocks.1.mlp.fc2.b']) {
      expect(isFrozen(n, 2), n).toBe(true);
    }
    for (const n of ['image.blocks.2.ln1.g', 'text.blocks.2.attn.proj.w', 'image.ln.g', 'image.proj.w', 'text.ln.b', 'text.proj.w', 'logitScale']) expect(isFrozen(n, 2), n).toBe(false);
    expect(isFrozen('image.patch.w', 0)).toBe(false);
    expect(isFrozen('image.blocks.0.ln1.g', 0)).toBe(false);
    // TeCoA / FARE train the image tower only
    expect(trainableNames(init, { freezeBlocks: 0, imageOnly: true }).every((n) => n.startsWith('image.'))).toBe(true);
    expect(trainableNames(init, { freezeBlocks: 1, imageOnly: false })).toEqual([...init.variables.keys()].filter((n) => !isFrozen(n, 1)));
  });

  it('refuses what cannot apply, naming the flag', () => {
    expect(() => validateFreezeBlocks(3, init.config, { imageOnly: false, fromInit: true })).toThrow(FreezeError);
    expect(() => validateFreezeBlocks(3, init.config, { imageOnly: false, fromInit: true })).toThrow(/--freeze-blocks 3 exceeds the image tower's depth 2/);
    expect(() => validateFreezeBlocks(1, init.config, { imageOnly: false, fromInit: false })).toThrow(/--freeze-blocks 1 needs --init/);
    expect(() => validateFreezeBlocks(2, init.config, { imageOnly: false, fromInit: true })).not.toThrow();
  });

  it('frozen weights stay bit-identical, trainable ones change, frozen ones have no AdamW moments; killed + resumed = straight (with --grad-accum)', async () => {
    const before = snapshot(init);
    // 16 images: 4 micro-batches of 4 = 2 steps of 2 per epoch
    const config = cfg({ epochs: 4, freezeBlocks: 1, gradAccum: 2 });
    const { r, steps } = await run('freeze', config);
    expect(steps.length).toBe(8);
    const after = snapshot(r.model);
    const frozen = [...after.keys()].filter((n) => isFrozen(n, 1));
    const trained = [...after.keys()].filter((n) => !isFrozen(n, 1));
    expect(frozen).toContain('image.blocks.0.mlp.fc1.w');
    expect(frozen).toContain('text.tok');
    for (const n of frozen) expect(bitEqual(after.get(n)!, before.get(n)!), `${n} changed`).toBe(true);
    // every trainable variable that the loss reaches moves (all of them here)
    for (const n of trained) expect(bitEqual(after.get(n)!, before.get(n)!), `${n} did not train`).toBe(false);
    const ck = readCheckpoint<TrainerState>(join(dir, 'freeze', CHECKPOINT_FILE));
    expect(ck.tensors.has('w/image.blocks.0.attn.qkv.w')).toBe(true); // weights are all checkpointed
    expect(ck.tensors.has('m/image.blocks.0.attn.qkv.w')).toBe(false); // moments only for trainable ones
    expect(ck.tensors.has('m/image.blocks.1.attn.qkv.w')).toBe(true);

    // interrupted after step 3 (mid-epoch 1), resumed: the same weights bit for bit, the same losses
    const part = await run('freeze-resume', config, { stopAfterStep: 3 });
    expect(part.r.finished).toBe(false);
    part.r.model.dispose();
    const rest = await run('freeze-resume', config, { resume: true });
    expect([...part.steps, ...rest.steps].map((s) => s.loss)).toEqual(steps.map((s) => s.loss));
    const resumed = snapshot(rest.r.model);
    for (const [n, v] of after) expect(bitEqual(resumed.get(n)!, v), n).toBe(true);
    r.model.dispose();
    rest.r.model.dispose();
  });
});

describe('--grad-accum', () => {
  it('applies the mean of the micro-batch gradients (each micro-batch contrastive on its own), not the gradient of the union batch', async () => {
    const config = cfg({ batch: 4, gradAccum: 2, maxSteps: 1 });
    let applied: Map<string, Float32Array> | null = null;
    const { r } = await run('accum-grad', config, {
      onGradients: (step, grads) => {
        if (step === 0) applied = new Map(Object.entries(grads).map(([k, g]) => [k, Float32Array.from(g.dataSync() as Float32Array)]));
      },
    });
    r.model.dispose();
    expect(applied).not.toBeNull();
    const got = applied as unknown as Map<string, Float32Array>;

    // the same two micro-batches computed separately, at the init weights: epoch 0's batches 0 and 1, captions
    // sampled with the micro-batch's own seeded stream (seed * 1_000_003 + micro index), as the trainer does
    const model = createDualEncoder(init.config, 0);
    for (const [k, v] of model.variables) v.assign(init.variables.get(k)!);
    const nameOf = new Map([...model.variables].map(([k, v]) => [v.name, k]));
    const tokenized = split.captions.map((c) => tokenizer.encode(c));
    const batches = epochBatches(split.count, 4, 5, 0);
    const lossOf = (images: ArrayLike<number>, micro: number) => {
      const sampled = sampleCaptions(split, images, config.captionsPerImage, new Rng(5 * 1_000_003 + micro));
      const { parts, owner } = stackIdsBucketed(tokenized, sampled.captions, sampled.owner, config.textBuckets);
      const x = tf.tensor4d(gatherPixels(split, images), [images.length, 16, 16, 3]);
      const ids = parts.map((p) => tf.tensor2d(p.ids, [p.rows, p.length], 'int32'));
      return { x, ids, f: () => multiPositiveInfoNce(model.imageTower(x), textTowerBucketed(model, ids), owner, model.logitScale()) };
    };
    const vars = [...model.variables.values()];
    const micro = [0, 1].map((k) => {
      const l = lossOf(batches[k], k);
      const g = tf.variableGrads(l.f, vars);
      l.x.dispose();
      for (const t of l.ids) t.dispose();
      g.value.dispose();
      return g.grads;
    });
    let maxDiff = 0;
    let maxAbs = 0;
    for (const [vn, g0] of Object.entries(micro[0])) {
      const name = nameOf.get(vn)!;
      const mean = tf.tidy(() => tf.div(tf.add(g0, micro[1][vn]), 2).dataSync() as Float32Array);
      const a = got.get(name)!;
      expect(a, name).toBeDefined();
      for (let i = 0; i < a.length; i++) {
        maxDiff = Math.max(maxDiff, Math.abs(a[i] - mean[i]));
        maxAbs = Math.max(maxAbs, Math.abs(mean[i]));
      }
    }
    expect(got.size).toBe(Object.keys(micro[0]).length);
    expect(maxAbs).toBeGreaterThan(1e-3);
    // bit for bit: the trainer's backward does tfjs' arithmetic (training/lean-grads.ts) and the mean is the same
    // add-then-divide
    expect(maxDiff).toBe(0);

    // one batch of the 8 images contrasts every caption against all 8 images: a different (and not wanted) gradient
    const union = Int32Array.from([...batches[0], ...batches[1]]);
    const u = lossOf(union, 0);
    const whole = tf.variableGrads(u.f, vars);
    let unionDiff = 0;
    for (const [vn, g] of Object.entries(whole.grads)) {
      const b = g.dataSync() as Float32Array;
      const a = got.get(nameOf.get(vn)!)!;
      for (let i = 0; i < a.length; i++) unionDiff = Math.max(unionDiff, Math.abs(a[i] - b[i]));
    }
    expect(unionDiff).toBeGreaterThan(1e-4 * maxAbs);
    u.x.dispose();
    for (const t of u.ids) t.dispose();
    whole.value.dispose();
    for (const g of [...micro.flatMap((m) => Object.values(m)), ...Object.values(whole.grads)]) g.dispose();
    model.dispose();
  });

  it('steps per epoch = batches / N (a remainder is skipped), numTensors flat across steps, a too-large N is refused by name', async () => {
    const live: number[] = [];
    const { r } = await run('accum-flat', cfg({ batch: 2, gradAccum: 3, epochs: 2, freezeBlocks: 1 }), {
      onStep: () => live.push(tf.memory().numTensors - opCacheTensorCount()),
    });
    // 16 images / batch 2 = 8 micro-batches -> 2 steps of 3 per epoch (the last 2 micro-batches are skipped)
    expect(r.state.totalSteps).toBe(4);
    expect(live.length).toBe(4);
    expect(new Set(live).size).toBe(1);
    r.model.dispose();
    await expect(run('accum-big', cfg({ batch: 4, gradAccum: 5 }))).rejects.toThrow(/--grad-accum 5 needs 5 batches per epoch, but the 16 training images make 4 batch\(es\) of 4/);
  });

  it('--max-steps ends the run after that many optimizer steps, over which the schedule is laid out', async () => {
    const { r, steps } = await run('max-steps', cfg({ epochs: 3, maxSteps: 5, warmupFraction: 0.2, minLrRatio: 0.1 }));
    expect(steps.map((s) => s.step)).toEqual([1, 2, 3, 4, 5]);
    expect(r.finished).toBe(true);
    expect(r.state.totalSteps).toBe(5);
    // the cosine runs over the 5 steps, not over the 12 of 3 epochs
    expect(steps.map((s) => s.lr)).toEqual([0, 1, 2, 3, 4].map((i) => warmupCosine(i, 5, 3e-3, 0.2, 0.1)));
    expect(steps[4].lr).toBeLessThan(warmupCosine(4, 12, 3e-3, 0.2, 0.1));
    r.model.dispose();
  });
});

describe('logit scale', () => {
  it("is clamped to [0, ln 100] after every optimizer step (CLIP's rule), and only when it trains", async () => {
    const maxLog = Math.fround(Math.log(100));
    for (const [start, bound] of [
      [5.5, maxLog],
      [-0.5, 0],
    ] as const) {
      const m = createDualEncoder(init.config, 4);
      for (const [k, v] of m.variables) v.assign(init.variables.get(k)!);
      m.variables.get('logitScale')!.assign(tf.scalar(start));
      const r = await trainModel({ out: join(dir, `clamp-${start}`), train: split, config: cfg({ maxSteps: 1 }), seed: 5, quiet: true, init: { model: m, tokenizer, id: 'c', adopt: true } });
      expect(r.model.variables.get('logitScale')!.dataSync()[0]).toBe(bound);
      r.model.dispose();
    }
    // TeCoA does not train the scale: an out-of-range value an imported checkpoint carries is left as it is
    const m = createDualEncoder(init.config, 4);
    for (const [k, v] of m.variables) v.assign(init.variables.get(k)!);
    m.variables.get('logitScale')!.assign(tf.scalar(5.5));
    const r = await trainModel({ out: join(dir, 'clamp-tecoa'), train: split, config: cfg({ method: 'tecoa', maxSteps: 1, trainSteps: 1 }), seed: 5, quiet: true, init: { model: m, tokenizer, id: 'c', adopt: true } });
    expect(r.model.variables.get('logitScale')!.dataSync()[0]).toBe(5.5);
    r.model.dispose();
  });
});

describe('configuration', () => {
  it('validates the new train settings with the path of the offending field', () => {
    expect(() => loadConfig({ overrides: { train: { gradAccum: 0 } } })).toThrow(ConfigError);
    expect(() => loadConfig({ overrides: { train: { gradAccum: 0 } } })).toThrow(/train\.gradAccum/);
    expect(() => loadConfig({ overrides: { train: { freezeBlocks: -1 } } })).toThrow(/train\.freezeBlocks/);
    expect(() => loadConfig({ overrides: { train: { maxSteps: 1.5 } } })).toThrow(/train\.maxSteps/);
    const c = loadConfig({ overrides: { train: { gradAccum: 4, freezeBlocks: 6, maxSteps: 10 } } });
    expect([c.train.gradAccum, c.train.freezeBlocks, c.train.maxSteps]).toEqual([4, 6, 10]);
    expect(trainSchema.parse({}).gradAccum).toBe(1);
    expect(trainSchema.parse({}).freezeBlocks).toBe(0);
  });

  it('manyfold train refuses bad --grad-accum / --freeze-blocks / --max-steps values by flag name before running anything', async () => {
    for (const [flag, value, why] of [
      ['--grad-accum', '0', /--grad-accum <n>.*expected an integer >= 1, got 0/],
      ['--freeze-blocks', '-1', /--freeze-blocks <n>.*expected an integer >= 0, got -1/],
      ['--freeze-blocks', 'two', /--freeze-blocks <n>.*expected an integer, got "two"/],
      ['--max-steps', '0', /--max-steps <n>.*expected an integer >= 1, got 0/],
    ] as const) {
      const program = new Command().exitOverride().configureOutput({ writeErr: () => undefined });
      registerTrainCommand(program);
      const err = await program.parseAsync(['node', 'manyfold', 'train', '--data', '/nonexistent/d.json', '--out', '/nonexistent/o', flag, value]).catch((e: unknown) => e);
      expect(err, `${flag} ${value}`).toBeInstanceOf(CommanderError);
      expect((err as CommanderError).message).toMatch(why);
    }
  });
});
