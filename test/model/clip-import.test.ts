/**
 * `manyfold import` on tiny random checkpoints laid out like the real ones (test/reference/build-checkpoints.ts):
 * every variant imports, the tensors land under the canonical names with the right layouts (checked value by value
 * against the source tensors), the manifest records the architecture, preprocessing and source hashes, and every
 * malformed input is refused with a CheckpointError naming the file and tensor.
 * The model is never run here (parity with the Python reference is clip-parity.test.ts).
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openArtifactWeights, readManifest, verifyArtifact } from '../../src/model/artifact.js';
import { importClipCheckpoint } from '../../src/model/clip/import.js';
import { canonicalWeights, shapesFromConfig } from '../../src/model/clip/layout.js';
import { CheckpointError, encodeSafetensors, openSafetensors, type TensorToWrite } from '../../src/model/clip/safetensors.js';
import type { ModelConfig } from '../../src/model/types.js';
import { buildTinyCheckpoint, TINY, VARIANTS, type BuiltCheckpoint, type VariantName } from '../reference/build-checkpoints.js';
import { TINY_BPE_EOT_ID, TINY_BPE_VOCAB_SIZE } from '../reference/tiny-bpe.js';

let root: string;
const built = new Map<string, BuiltCheckpoint>();
const imported = new Map<string, string>();
const quiet = (): void => undefined;

beforeAll(async () => {
  root = await fs.mkdtemp(path.join(os.tmpdir(), 'mf-clip-import-'));
  for (const v of VARIANTS) {
    const b = await buildTinyCheckpoint(path.join(root, 'ckpt', v.name), v.name as VariantName);
    built.set(v.name, b);
    const out = path.join(root, 'art', v.name);
    await importClipCheckpoint({ from: b.dir, out, log: quiet, created: new Date('2026-12-06T00:00:00Z') });
    imported.set(v.name, out);
  }
});

afterAll(async () => {
  if (root) await fs.rm(root, { recursive: true, force: true });
});

/** a fresh copy of a variant's checkpoint directory to break */
let copies = 0;
async function copyOf(variant: VariantName): Promise<string> {
  const dst = path.join(root, 'broken', `${copies++}-${variant}`);
  await fs.cp(built.get(variant)!.dir, dst, { recursive: true });
  return dst;
}

async function expectCheckpointError(p: Promise<unknown>, message: RegExp, file?: string, tensor?: string): Promise<CheckpointError> {
  const err = await p.then(
    () => {
      throw new Error('expected a CheckpointError');
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(CheckpointError);
  const ce = err as CheckpointError;
  expect(ce.message).toMatch(message);
  if (file !== undefined) {
    expect(ce.file).toBe(file);
    expect(ce.message).toContain(file);
  }
  if (tensor !== undefined) {
    expect(ce.tensor).toBe(tensor);
    expect(ce.message).toContain(tensor);
  }
  return ce;
}

const importTo = (from: string, extra: Record<string, unknown> = {}) =>
  importClipCheckpoint({ from, out: path.join(root, 'out', `${copies++}`), log: quiet, ...extra });

/** every tensor of a safetensors file, as written (float dtypes upcast; int64 kept) */
async function readAll(file: string): Promise<TensorToWrite[]> {
  const st = await openSafetensors(file);
  try {
    const out: TensorToWrite[] = [];
    for (const [name, info] of st.tensors) {
      if (info.dtype === 'I64') {
        const raw = await st.readRaw(name);
        out.push({ name, shape: info.shape, dtype: 'I64', data: new BigInt64Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength)) });
      } else {
        out.push({ name, shape: info.shape, dtype: info.dtype as 'F32' | 'F16' | 'BF16', data: await st.readFloat32(name) });
      }
    }
    return out;
  } finally {
    await st.close();
  }
}

async function rewrite(file: string, edit: (ts: TensorToWrite[]) => TensorToWrite[]): Promise<void> {
  const ts = await readAll(file);
  await fs.writeFile(file, encodeSafetensors(edit(ts)));
}

async function editJson(file: string, edit: (j: Record<string, any>) => void): Promise<void> {
  const j = JSON.parse(await fs.readFile(file, 'utf8')) as Record<string, any>;
  edit(j);
  await fs.writeFile(file, JSON.stringify(j, null, 2));
}

async function sourceTensor(variant: string, file: string, name: string): Promise<Float32Array> {
  const st = await openSafetensors(path.join(built.get(variant)!.dir, file));
  try {
    return await st.readFloat32(name);
  } finally {
    await st.close();
  }
}

async function artifactTensor(variant: string, name: string): Promise<Float32Array> {
  const a = await openArtifactWeights(imported.get(variant)!);
  try {
    return await a.read(name);
  } finally {
    await a.close();
  }
}

describe('import: every variant', () => {
  it.each(VARIANTS.map((v) => v.name))('%s: verified artifact with the canonical names, shapes and CLIP config', async (name) => {
    const spec = VARIANTS.find((v) => v.name === name)!;
    const dir = imported.get(name)!;
    const m = await verifyArtifact(dir);
    const c = m.config as ModelConfig;
    expect(c.family).toBe('clip');
    expect(c.preset).toBe('clip');
    expect(c.embedDim).toBe(TINY.projection);
    expect(c.image).toEqual({ size: 32, patch: 8, width: 64, depth: 2, heads: 4, mlpRatio: 4 });
    expect(c.text).toEqual({ width: 48, depth: 2, heads: 4, mlpRatio: 4, maxLen: 77, vocabSize: built.get(name)!.vocabSize });
    expect(c.clip!.activation).toBe(spec.activation);
    expect(c.clip!.textPooling).toBe(spec.format === 'hf' ? spec.pooling : 'argmax');
    expect(c.clip!.eosTokenId).toBe(TINY_BPE_EOT_ID);
    expect(c.clip!.pixelMean).toEqual(spec.mean);
    expect(c.clip!.pixelStd).toEqual(spec.std);
    expect(c.clip!.lnEps).toBe(1e-5);
    expect(c.clip!.resizeShortestEdge).toBe(32);
    // logit_scale as stored (F16 / BF16 rounded), in the config and as the weight
    const stored = (await artifactTensor(name, 'logitScale'))[0];
    expect(c.initLogitScale).toBe(stored);
    expect(Math.abs(stored - spec.logitScale)).toBeLessThan(spec.dtype === 'F32' ? 1e-6 : 0.02);

    const want = canonicalWeights(shapesFromConfig(c));
    expect(m.weights.map((w) => w.name)).toEqual(want.map((w) => w.name));
    expect(m.weights.map((w) => w.shape)).toEqual(want.map((w) => w.shape));
    expect(m.weights.some((w) => w.name === 'image.patch.b')).toBe(false);
    expect(m.tokenizer.vocabSize).toBe(built.get(name)!.vocabSize);
    expect(m.tokenizer.maxLen).toBe(77);
    const rm = await readManifest(dir);
    expect(rm.id).toBe(m.id);
  });

  it.each(VARIANTS.map((v) => v.name))('%s: manifest.source lists every file read with its bytes and sha256', async (name) => {
    const m = await readManifest(imported.get(name)!);
    const b = built.get(name)!;
    expect(m.source!.format).toBe(b.spec.format);
    expect(m.source!.dir).toBe(name);
    const paths = m.source!.files.map((f) => f.path);
    const expected =
      b.spec.format === 'hf'
        ? ['config.json', 'preprocessor_config.json', 'model.safetensors', 'tokenizer.json', 'vocab.json', 'merges.txt']
        : ['open_clip_config.json', 'open_clip_model.safetensors', 'tokenizer.json', 'vocab.json', 'merges.txt', 'bpe_simple_vocab_16e6.txt'];
    expect(paths).toEqual(expected);
    for (const f of m.source!.files) {
      const bytes = await fs.readFile(path.join(b.dir, f.path));
      expect(f.bytes).toBe(bytes.byteLength);
      expect(f.sha256).toBe(createHash('sha256').update(bytes).digest('hex'));
      expect(f.sha256).toBe(b.files[f.path]);
    }
  });

  it('is deterministic: the same checkpoint imports to the same id', async () => {
    const r = await importTo(built.get('hf-f32-quickgelu-argmax')!.dir);
    expect(r.manifest.id).toBe((await readManifest(imported.get('hf-f32-quickgelu-argmax')!)).id);
    expect(r.summary).toMatch(/imported hf hf-f32-quickgelu-argmax .* 0\.21M parameters .* id mf-[0-9a-f]{12}/);
    expect(r.parameters).toBe(canonicalWeights(shapesFromConfig(r.manifest.config)).reduce((s, w) => s + w.shape.reduce((a, b) => a * b, 1), 0));
  });

  it('refuses to replace an existing artifact unless told to', async () => {
    const from = built.get('hf-f32-quickgelu-argmax')!.dir;
    const out = imported.get('hf-f32-quickgelu-argmax')!;
    await expect(importClipCheckpoint({ from, out, log: quiet })).rejects.toThrow(/already exists/);
    const r = await importClipCheckpoint({ from, out, log: quiet, overwrite: true });
    expect(r.manifest.id).toBe((await readManifest(out)).id);
  });
});

describe('import: layouts, value by value', () => {
  const W = TINY.visionWidth;
  const p = TINY.patch;

  it('HF: q / k / v Linear weights fuse into qkv.w [W, 3W] as transposes, columns q | k | v; biases concatenate', async () => {
    const v = 'hf-f32-quickgelu-argmax';
    const f = 'model.safetensors';
    for (const [tower, w] of [['vision_model', W], ['text_model', TINY.textWidth]] as const) {
      const target = tower === 'vision_model' ? 'image' : 'text';
      const qkv = await artifactTensor(v, `${target}.blocks.1.attn.qkv.w`);
      const qkvB = await artifactTensor(v, `${target}.blocks.1.attn.qkv.b`);
      expect(qkv.length).toBe(w * 3 * w);
      for (const [s, part] of (['q', 'k', 'v'] as const).entries()) {
        const src = await sourceTensor(v, f, `${tower}.encoder.layers.1.self_attn.${part}_proj.weight`); // [out, in]
        const bias = await sourceTensor(v, f, `${tower}.encoder.layers.1.self_attn.${part}_proj.bias`);
        for (let i = 0; i < w; i++) for (let j = 0; j < w; j++) expect(qkv[i * 3 * w + s * w + j]).toBe(src[j * w + i]);
        for (let j = 0; j < w; j++) expect(qkvB[s * w + j]).toBe(bias[j]);
      }
    }
  });

  it('open_clip: in_proj_weight [3W, W] becomes its transpose (rows q, k, v -> columns), with the module. prefix stripped', async () => {
    const v = 'openclip-f32-gelu';
    const src = await sourceTensor(v, 'open_clip_model.safetensors', 'visual.transformer.resblocks.0.attn.in_proj_weight');
    const qkv = await artifactTensor(v, 'image.blocks.0.attn.qkv.w');
    for (let r = 0; r < 3 * W; r++) for (let i = 0; i < W; i++) expect(qkv[i * 3 * W + r]).toBe(src[r * W + i]);

    const pv = 'openclip-f16-quickgelu-module-prefix';
    const st = await openSafetensors(path.join(built.get(pv)!.dir, 'open_clip_model.safetensors'));
    try {
      expect([...st.tensors.keys()].every((k) => k.startsWith('module.'))).toBe(true);
      const srcT = await st.readFloat32('module.transformer.resblocks.1.attn.in_proj_bias');
      expect(Array.from(await artifactTensor(pv, 'text.blocks.1.attn.qkv.b'))).toEqual(Array.from(srcT));
    } finally {
      await st.close();
    }
  });

  it('patch embedding: conv [W, 3, p, p] -> image.patch.w[(py*p + px)*3 + c][w] (both formats)', async () => {
    for (const [v, file, key] of [
      ['hf-f32-quickgelu-argmax', 'model.safetensors', 'vision_model.embeddings.patch_embedding.weight'],
      ['openclip-f32-gelu', 'open_clip_model.safetensors', 'visual.conv1.weight'],
    ] as const) {
      const conv = await sourceTensor(v, file, key);
      const patch = await artifactTensor(v, 'image.patch.w');
      let checked = 0;
      for (let w = 0; w < W; w++)
        for (let c = 0; c < 3; c++)
          for (let py = 0; py < p; py++)
            for (let px = 0; px < p; px++) {
              expect(patch[((py * p + px) * 3 + c) * W + w]).toBe(conv[((w * 3 + c) * p + py) * p + px]);
              checked++;
            }
      expect(checked).toBe(conv.length);
      // a wrong layout would still be a permutation of the values; this one is not the identity
      expect(Array.from(patch.slice(0, 8))).not.toEqual(Array.from(conv.slice(0, 8)));
    }
  });

  it('projections: HF visual_projection [E, W] is transposed; open_clip visual.proj [W, E] is kept', async () => {
    const E = TINY.projection;
    const hf = await sourceTensor('hf-f32-quickgelu-argmax', 'model.safetensors', 'visual_projection.weight');
    const a = await artifactTensor('hf-f32-quickgelu-argmax', 'image.proj.w');
    for (let i = 0; i < W; i++) for (let e = 0; e < E; e++) expect(a[i * E + e]).toBe(hf[e * W + i]);
    const oc = await sourceTensor('openclip-f32-gelu', 'open_clip_model.safetensors', 'text_projection');
    expect(Array.from(await artifactTensor('openclip-f32-gelu', 'text.proj.w'))).toEqual(Array.from(oc));
  });

  it('MLP and output projections are transposed Linear weights; LayerNorms and embeddings copy', async () => {
    const v = 'hf-f32-quickgelu-argmax';
    const M = 4 * W;
    const fc1 = await sourceTensor(v, 'model.safetensors', 'vision_model.encoder.layers.0.mlp.fc1.weight'); // [M, W]
    const a = await artifactTensor(v, 'image.blocks.0.mlp.fc1.w'); // [W, M]
    for (let i = 0; i < W; i += 7) for (let j = 0; j < M; j += 5) expect(a[i * M + j]).toBe(fc1[j * W + i]);
    const out = await sourceTensor(v, 'model.safetensors', 'text_model.encoder.layers.1.self_attn.out_proj.weight');
    const ao = await artifactTensor(v, 'text.blocks.1.attn.proj.w');
    const w = TINY.textWidth;
    for (let i = 0; i < w; i++) for (let j = 0; j < w; j++) expect(ao[i * w + j]).toBe(out[j * w + i]);
    expect(Array.from(await artifactTensor(v, 'image.lnpre.g'))).toEqual(Array.from(await sourceTensor(v, 'model.safetensors', 'vision_model.pre_layrnorm.weight')));
    expect(Array.from(await artifactTensor(v, 'text.pos'))).toEqual(Array.from(await sourceTensor(v, 'model.safetensors', 'text_model.embeddings.position_embedding.weight')));
  });

  it('F16 and BF16 are upcast exactly (every value is the stored half / bfloat16, widened)', async () => {
    const f16 = await artifactTensor('hf-f16-gelu-eos', 'image.cls');
    const st = await openSafetensors(path.join(built.get('hf-f16-gelu-eos')!.dir, 'model.safetensors'));
    try {
      const raw = await st.readRaw('vision_model.embeddings.class_embedding');
      const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
      for (let i = 0; i < f16.length; i++) {
        // independent decode of binary16: sign, 5-bit exponent, 10-bit fraction (normal numbers at this scale)
        const h = dv.getUint16(i * 2, true);
        const e = (h >> 10) & 0x1f;
        const val = (h & 0x8000 ? -1 : 1) * (e === 0 ? (h & 0x3ff) * 2 ** -24 : (1 + (h & 0x3ff) / 1024) * 2 ** (e - 15));
        expect(f16[i]).toBe(val);
      }
    } finally {
      await st.close();
    }
    const bf = await artifactTensor('hf-bf16-quickgelu-argmax', 'text.tok');
    const bits = new Uint32Array(bf.buffer, bf.byteOffset, bf.length);
    expect(bits.every((b) => (b & 0xffff) === 0)).toBe(true);
    expect(bf.some((x) => x !== 0)).toBe(true);
  });

  it('a sharded HF checkpoint (model.safetensors.index.json) imports to the same weights and id as one file', async () => {
    const b = await buildTinyCheckpoint(path.join(root, 'sharded'), 'hf-f32-quickgelu-argmax', { shards: 3 });
    expect(Object.keys(b.files)).toContain('model-00003-of-00003.safetensors');
    expect(Object.keys(b.files)).not.toContain('model.safetensors');
    const r = await importTo(b.dir);
    expect(r.manifest.id).toBe((await readManifest(imported.get('hf-f32-quickgelu-argmax')!)).id);
    expect(r.manifest.source!.files.map((f) => f.path)).toEqual(
      expect.arrayContaining(['model.safetensors.index.json', 'model-00001-of-00003.safetensors', 'model-00002-of-00003.safetensors', 'model-00003-of-00003.safetensors']),
    );
  });

  it('--format picks one layout when a directory holds both (LAION hub repositories do)', async () => {
    const dir = await copyOf('hf-f32-quickgelu-argmax');
    for (const f of ['open_clip_config.json', 'open_clip_model.safetensors']) {
      await fs.copyFile(path.join(built.get('openclip-f32-gelu')!.dir, f), path.join(dir, f));
    }
    expect((await importTo(dir)).format).toBe('hf');
    const oc = await importTo(dir, { format: 'open_clip' });
    expect(oc.format).toBe('open_clip');
    expect(oc.manifest.config.clip!.activation).toBe('gelu');
  });
});

describe('import: refusals name the file and tensor', () => {
  it('refuses a pickle-only HF directory, saying why and how to convert', async () => {
    const dir = await copyOf('hf-f32-quickgelu-argmax');
    await fs.rename(path.join(dir, 'model.safetensors'), path.join(dir, 'pytorch_model.bin'));
    const e = await expectCheckpointError(importTo(dir), /refusing a pickle checkpoint/, 'pytorch_model.bin');
    expect(e.message).toMatch(/[Uu]npickling runs arbitrary code/);
    expect(e.message).toContain('save_pretrained');
    expect(e.message).toContain('safe_serialization=True');
    expect(e.message).toContain('save_file');
  });

  it('refuses open_clip .pt / .pth / .ckpt files without safetensors beside them', async () => {
    for (const ext of ['pt', 'pth', 'ckpt']) {
      const dir = await copyOf('openclip-f32-gelu');
      await fs.rename(path.join(dir, 'open_clip_model.safetensors'), path.join(dir, `open_clip_pytorch_model.${ext}`));
      const e = await expectCheckpointError(importTo(dir), /pickle/, `open_clip_pytorch_model.${ext}`);
      expect(e.message).toMatch(/safetensors\.torch .*save_file/s);
      expect(e.message).toContain('weights_only=True');
    }
  });

  it('a pickle beside the safetensors is ignored (the safetensors are read)', async () => {
    const dir = await copyOf('hf-f32-quickgelu-argmax');
    await fs.writeFile(path.join(dir, 'pytorch_model.bin'), 'not read');
    expect((await importTo(dir)).format).toBe('hf');
  });

  it('a directory with no checkpoint says what it looked for', async () => {
    const dir = path.join(root, 'empty');
    await fs.mkdir(dir, { recursive: true });
    await expectCheckpointError(importTo(dir), /neither a Hugging Face CLIPModel checkpoint .* nor an open_clip one/);
    await expectCheckpointError(importTo(path.join(root, 'does-not-exist')), /cannot read checkpoint directory/);
  });

  it('missing tensors are listed (capped) with the file and the first one named', async () => {
    const dir = await copyOf('hf-f32-quickgelu-argmax');
    await rewrite(path.join(dir, 'model.safetensors'), (ts) => ts.filter((t) => !t.name.startsWith('vision_model.encoder.layers.1.') && t.name !== 'logit_scale'));
    const e = await expectCheckpointError(importTo(dir), /missing 17 tensor\(s\): .*vision_model\.encoder\.layers\.1\.layer_norm1\.weight.*\(17 in all\)/, 'model.safetensors');
    expect(e.tensor).toBe('vision_model.encoder.layers.1.layer_norm1.weight');
  });

  it('unexpected tensors are listed with dtype and shape', async () => {
    const dir = await copyOf('openclip-f32-gelu');
    await rewrite(path.join(dir, 'open_clip_model.safetensors'), (ts) => [...ts, { name: 'logit_bias', shape: [], dtype: 'F32', data: Float32Array.of(-10) }]);
    await expectCheckpointError(importTo(dir), /unexpected 1 tensor\(s\): logit_bias \(F32 \[\]\)/, 'open_clip_model.safetensors', 'logit_bias');
  });

  it('a mis-shaped tensor names the config fields that fix its shape', async () => {
    const dir = await copyOf('hf-f32-quickgelu-argmax');
    await editJson(path.join(dir, 'config.json'), (j) => {
      j.projection_dim = 16; // the weights say 32
    });
    await expectCheckpointError(importTo(dir), /visual_projection\.weight is \[32, 64\], expected \[16, 64\] \(projection_dim 16 x vision_config\.hidden_size 64\)/, 'model.safetensors', 'visual_projection.weight');
  });

  it('position embeddings that do not match image_size / patch_size are refused', async () => {
    const dir = await copyOf('openclip-f32-gelu');
    await editJson(path.join(dir, 'open_clip_config.json'), (j) => {
      j.model_cfg.vision_cfg.image_size = 40; // (40/8)^2 + 1 = 26 positions, the weights have 17
    });
    await expectCheckpointError(importTo(dir), /visual\.positional_embedding is \[17, 64\], expected \[26, 64\] \(\(image_size 40 \/ patch_size 8\)\^2 \+ 1 = 26/, 'open_clip_model.safetensors', 'visual.positional_embedding');
  });

  it('inconsistent configs are refused naming the field: width not divisible by heads, size not a multiple of the patch', async () => {
    const a = await copyOf('hf-f32-quickgelu-argmax');
    await editJson(path.join(a, 'config.json'), (j) => {
      j.vision_config.num_attention_heads = 5;
    });
    await expectCheckpointError(importTo(a), /vision_config\.hidden_size 64 is not divisible by vision_config\.num_attention_heads 5/, 'config.json');
    const b = await copyOf('hf-f32-quickgelu-argmax');
    await editJson(path.join(b, 'config.json'), (j) => {
      j.vision_config.image_size = 36;
    });
    await expectCheckpointError(importTo(b), /image_size 36 is not a multiple of vision_config\.patch_size 8/, 'config.json');
    const c = await copyOf('openclip-f32-gelu');
    await editJson(path.join(c, 'open_clip_config.json'), (j) => {
      j.model_cfg.vision_cfg.head_width = 24;
    });
    await expectCheckpointError(importTo(c), /width 64 is not divisible by head_width 24/, 'open_clip_config.json');
    const d = await copyOf('hf-f32-quickgelu-argmax');
    await editJson(path.join(d, 'config.json'), (j) => {
      delete j.text_config.vocab_size;
    });
    await expectCheckpointError(importTo(d), /text_config: vocab_size/, 'config.json');
    const e = await copyOf('hf-f32-quickgelu-argmax');
    await editJson(path.join(e, 'config.json'), (j) => {
      j.model_type = 'siglip';
    });
    await expectCheckpointError(importTo(e), /model_type is 'siglip'/, 'config.json');
  });

  it('a config without the activation requires --activation, saying it is not in the weights', async () => {
    const hf = await copyOf('hf-f32-quickgelu-argmax');
    await editJson(path.join(hf, 'config.json'), (j) => {
      delete j.text_config.hidden_act;
      delete j.vision_config.hidden_act;
    });
    const e = await expectCheckpointError(importTo(hf), /activation is not stated .* cannot be read from the weights/s, 'config.json');
    expect(e.message).toContain('--activation quick_gelu');
    expect((await importTo(hf, { activation: 'quick_gelu' })).manifest.config.clip!.activation).toBe('quick_gelu');

    const oc = await copyOf('openclip-f32-gelu');
    await editJson(path.join(oc, 'open_clip_config.json'), (j) => {
      delete j.model_cfg.quick_gelu;
    });
    await expectCheckpointError(importTo(oc), /no model_cfg\.quick_gelu.*--activation/s, 'open_clip_config.json');
    expect((await importTo(oc, { activation: 'gelu' })).manifest.config.clip!.activation).toBe('gelu');
  });

  it('an unknown dtype names the tensor', async () => {
    const dir = await copyOf('hf-f32-quickgelu-argmax');
    const file = path.join(dir, 'model.safetensors');
    const buf = await fs.readFile(file);
    const n = Number(buf.readBigUInt64LE(0));
    const header = buf.subarray(8, 8 + n).toString('utf8');
    // same byte length: "F32" -> "F8X"
    const patched = header.replace(/("logit_scale":\{"dtype":")F32/, '$1F8X');
    expect(patched).not.toBe(header);
    buf.write(patched, 8, 'utf8');
    await fs.writeFile(file, buf);
    await expectCheckpointError(importTo(dir), /unknown dtype "F8X"/, 'model.safetensors', 'logit_scale');
  });

  it('a weight stored with an integer dtype is refused', async () => {
    const dir = await copyOf('hf-f32-quickgelu-argmax');
    await rewrite(path.join(dir, 'model.safetensors'), (ts) => ts.map((t) => (t.name === 'logit_scale' ? { name: t.name, shape: [], dtype: 'I64' as const, data: BigInt64Array.of(4n) } : t)));
    await expectCheckpointError(importTo(dir), /non-float dtype: logit_scale is I64/, 'model.safetensors', 'logit_scale');
  });

  it('truncated data names the tensor that runs past the end', async () => {
    const dir = await copyOf('hf-f32-quickgelu-argmax');
    const file = path.join(dir, 'model.safetensors');
    const st = await openSafetensors(file);
    const last = [...st.tensors.values()].sort((a, b) => b.end - a.end)[0];
    await st.close();
    await fs.truncate(file, (await fs.stat(file)).size - 10);
    await expectCheckpointError(importTo(dir), /truncated/, 'model.safetensors', last.name);
  });

  it('an oversized or lying header is refused before anything is allocated', async () => {
    const dir = await copyOf('hf-f32-quickgelu-argmax');
    const file = path.join(dir, 'model.safetensors');
    const buf = await fs.readFile(file);
    buf.writeBigUInt64LE(1n << 40n, 0);
    await fs.writeFile(file, buf);
    await expectCheckpointError(importTo(dir), /exceeds the .*-byte limit/, 'model.safetensors');
    buf.writeBigUInt64LE(BigInt(buf.length), 0); // within the limit, but past the end of the file
    await fs.writeFile(file, buf);
    await expectCheckpointError(importTo(dir), /runs past the end/, 'model.safetensors');
  });

  it('a header whose offsets disagree with the shape names the tensor', async () => {
    const dir = await copyOf('hf-f32-quickgelu-argmax');
    const file = path.join(dir, 'model.safetensors');
    const buf = await fs.readFile(file);
    const n = Number(buf.readBigUInt64LE(0));
    const header = buf.subarray(8, 8 + n).toString('utf8');
    const patched = header.replace(/("visual_projection\.weight":\{"dtype":"F32","shape":\[)32,64/, '$164,32');
    expect(patched).not.toBe(header);
    buf.write(patched, 8, 'utf8');
    await fs.writeFile(file, buf);
    await expectCheckpointError(importTo(dir), /visual_projection\.weight is \[64, 32\], expected \[32, 64\]/, 'model.safetensors', 'visual_projection.weight');
  });

  it('a non-finite weight names the tensor', async () => {
    const dir = await copyOf('hf-f32-quickgelu-argmax');
    await rewrite(path.join(dir, 'model.safetensors'), (ts) =>
      ts.map((t) => {
        if (t.name !== 'text_model.encoder.layers.0.mlp.fc2.weight') return t;
        const d = Float32Array.from(t.data as Float32Array);
        d[17] = NaN;
        return { ...t, data: d };
      }),
    );
    await expectCheckpointError(importTo(dir), /non-finite value/, 'model.safetensors', 'text_model.encoder.layers.0.mlp.fc2.weight');
  });

  it('a lying or hostile shard index is refused naming the index and tensor', async () => {
    const b = await buildTinyCheckpoint(path.join(root, 'sharded-bad'), 'hf-f32-quickgelu-argmax', { shards: 2 });
    const index = path.join(b.dir, 'model.safetensors.index.json');
    const orig = await fs.readFile(index, 'utf8');
    await editJson(index, (j) => {
      const other = j.weight_map['logit_scale'] === 'model-00001-of-00002.safetensors' ? 'model-00002-of-00002.safetensors' : 'model-00001-of-00002.safetensors';
      j.weight_map['logit_scale'] = other;
    });
    await expectCheckpointError(importTo(b.dir), /listed in model-0000\d-of-00002\.safetensors but stored in/, 'model.safetensors.index.json', 'logit_scale');
    await fs.writeFile(index, orig);
    await editJson(index, (j) => {
      j.weight_map['logit_scale'] = '../../etc/passwd.safetensors';
    });
    await expectCheckpointError(importTo(b.dir), /not a plain \.safetensors file name/, 'model.safetensors.index.json');
    await fs.writeFile(index, orig);
    await fs.rm(path.join(b.dir, 'model-00002-of-00002.safetensors'));
    await expectCheckpointError(importTo(b.dir), /cannot open .*ENOENT/, 'model-00002-of-00002.safetensors');
  });

  it('missing tokenizer files are named', async () => {
    const dir = await copyOf('hf-f32-quickgelu-argmax');
    for (const f of ['tokenizer.json', 'vocab.json']) await fs.rm(path.join(dir, f));
    await expectCheckpointError(importTo(dir), /no usable tokenizer: need tokenizer\.json, or vocab\.json \+ merges\.txt/, 'vocab.json');
    await fs.rm(path.join(dir, 'merges.txt'));
    await expectCheckpointError(importTo(dir), /no usable tokenizer/, 'tokenizer.json');
  });

  it('a tokenizer whose vocabulary disagrees with the config is refused', async () => {
    const dir = await copyOf('hf-f32-quickgelu-argmax');
    await editJson(path.join(dir, 'config.json'), (j) => {
      j.text_config.vocab_size = TINY_BPE_VOCAB_SIZE + 1;
    });
    // the token embedding no longer matches the config either; the tensor table is checked first
    await expectCheckpointError(importTo(dir), /token_embedding\.weight is \[740, 48\], expected \[741, 48\]/, 'model.safetensors');
  });

  it('preprocessor_config.json: a crop that is not the model input is refused; an absent file falls back to CLIP defaults, saying so', async () => {
    const dir = await copyOf('hf-f32-quickgelu-argmax');
    await editJson(path.join(dir, 'preprocessor_config.json'), (j) => {
      j.crop_size = { height: 224, width: 224 };
    });
    await expectCheckpointError(importTo(dir), /crop_size 224x224 does not match the model's image_size 32/, 'preprocessor_config.json');
    await fs.rm(path.join(dir, 'preprocessor_config.json'));
    const lines: string[] = [];
    const r = await importTo(dir, { log: (l: string) => lines.push(l) });
    expect(lines.join('\n')).toMatch(/preprocessor_config\.json not found: using CLIP's pixel mean \/ std/);
    expect(r.manifest.config.clip!.resizeShortestEdge).toBe(32);
    expect(r.manifest.source!.files.map((f) => f.path)).not.toContain('preprocessor_config.json');
  });

  it('option validation names the option', async () => {
    await expect(importClipCheckpoint({ from: 'x', out: 'y', format: 'onnx' as never })).rejects.toThrow(/format/);
    await expect(importClipCheckpoint({ from: 'x', out: 'y', activation: 'relu' as never })).rejects.toThrow(/activation/);
  });
});

describe('saveArtifact from a config and a weight list (no model)', () => {
  it('loads each tensor once, in order, hashes the same id as the eager form, and checks lengths and names', async () => {
    const src = imported.get('openclip-f32-gelu')!;
    const m = await readManifest(src);
    const a = await openArtifactWeights(src);
    const { clipTokenizerFromJSON } = await import('../../src/model/clip-tokenizer.js');
    const tokenizer = clipTokenizerFromJSON(a.tokenizerJson);
    const calls: string[] = [];
    const lazy = m.weights.map((w) => ({ name: w.name, shape: w.shape, data: () => (calls.push(w.name), a.read(w.name)) }));
    const eager = await Promise.all(m.weights.map(async (w) => ({ name: w.name, shape: w.shape, data: await a.read(w.name) })));
    await a.close();
    const { saveArtifact } = await import('../../src/model/artifact.js');
    const base = { config: m.config, tokenizer, training: {}, shardBytes: 64 * 1024 };
    const lazyM = await saveArtifact(path.join(root, 'save-lazy'), { ...base, weights: lazy });
    expect(calls).toEqual(m.weights.map((w) => w.name));
    const eagerM = await saveArtifact(path.join(root, 'save-eager'), { ...base, weights: eager });
    expect(lazyM.id).toBe(m.id);
    expect(eagerM.id).toBe(m.id);
    expect(new Set(lazyM.files.map((f) => f.path)).size).toBeGreaterThan(3); // sharded at 64 KiB
    await verifyArtifact(path.join(root, 'save-lazy'));

    await expect(saveArtifact(path.join(root, 'save-bad-1'), { ...base, weights: [{ ...eager[0], data: new Float32Array(3) }, ...eager.slice(1)] })).rejects.toThrow(
      /weight image\.patch\.w has 3 values for shape \[192, 64\]/,
    );
    await expect(saveArtifact(path.join(root, 'save-bad-2'), { ...base, weights: [...eager, eager[0]] })).rejects.toThrow(/duplicate weight image\.patch\.w/);
    await expect(saveArtifact(path.join(root, 'save-bad-3'), { ...base, config: { ...m.config, embedDim: 0 }, weights: eager })).rejects.toThrow(/invalid model config/);
    // a failed save leaves neither the target nor a temporary directory
    expect((await fs.readdir(root)).filter((f) => f.startsWith('.save') || f.startsWith('save-bad'))).toEqual([]);
  });
});
