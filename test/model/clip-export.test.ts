/**
 * `manyfold export`: imported CLIP artifacts leave as standard checkpoints. import -> export (F32) -> import gives
 * bit-identical weights and the same artifact id in both formats (and across them); the exported tensors are the
 * source checkpoint's own tensors, byte for byte, under the original names and layouts; refusals are clear.
 */
import { execFile } from 'node:child_process';
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ArtifactError, openArtifactWeights, readManifest, saveArtifact } from '../../src/model/artifact.js';
import { exportClipCheckpoint } from '../../src/model/clip/export.js';
import { parseHfConfig } from '../../src/model/clip/hf.js';
import { importClipCheckpoint } from '../../src/model/clip/import.js';
import { parseOpenClipConfig } from '../../src/model/clip/open-clip.js';
import { CheckpointError, openSafetensors } from '../../src/model/clip/safetensors.js';
import { buildTokenizer } from '../../src/model/tokenizer.js';
import type { ModelConfig } from '../../src/model/types.js';
import { buildTinyCheckpoint, VARIANTS, type BuiltCheckpoint, type VariantName } from '../reference/build-checkpoints.js';
import { TINY_BPE_EOT_ID } from '../reference/tiny-bpe.js';
import { fakeConfig } from '../eval/fake-model.js';

const REPO = path.resolve(__dirname, '../..');
const quiet = (): void => undefined;
let root: string;
const built = new Map<string, BuiltCheckpoint>();
const arts = new Map<string, string>();
let n = 0;
const fresh = (tag: string): string => path.join(root, 'out', `${n++}-${tag}`);

beforeAll(async () => {
  root = await fs.mkdtemp(path.join(os.tmpdir(), 'mf-clip-export-'));
  for (const v of VARIANTS) {
    const b = await buildTinyCheckpoint(path.join(root, 'ckpt', v.name), v.name as VariantName);
    built.set(v.name, b);
    const out = path.join(root, 'art', v.name);
    await importClipCheckpoint({ from: b.dir, out, log: quiet });
    arts.set(v.name, out);
  }
});

afterAll(async () => {
  if (root) await fs.rm(root, { recursive: true, force: true });
});

/** every tensor's dtype, shape and raw bytes */
async function tensorsOf(file: string): Promise<Map<string, { dtype: string; shape: number[]; raw: Buffer }>> {
  const st = await openSafetensors(file);
  try {
    const out = new Map<string, { dtype: string; shape: number[]; raw: Buffer }>();
    for (const [name, info] of st.tensors) out.set(name, { dtype: info.dtype, shape: info.shape, raw: Buffer.from(await st.readRaw(name)) });
    return out;
  } finally {
    await st.close();
  }
}

async function allWeights(dir: string): Promise<Map<string, Buffer>> {
  const a = await openArtifactWeights(dir);
  try {
    const out = new Map<string, Buffer>();
    for (const w of a.manifest.weights) {
      const v = await a.read(w.name);
      out.set(w.name, Buffer.from(v.buffer, v.byteOffset, v.byteLength));
    }
    return out;
  } finally {
    await a.close();
  }
}

describe('round trips', () => {
  it.each([
    ['hf-f32-quickgelu-argmax', 'hf'],
    ['hf-f16-gelu-eos', 'hf'],
    ['hf-bf16-quickgelu-argmax', 'hf'],
    ['openclip-f32-gelu', 'open_clip'],
    ['openclip-f16-quickgelu-module-prefix', 'open_clip'],
  ] as const)('%s: import -> export %s (f32) -> import gives bit-identical weights and the same id', async (variant, format) => {
    const first = arts.get(variant)!;
    const ckpt = fresh(`${variant}-${format}`);
    const r = await exportClipCheckpoint({ model: first, out: ckpt, format });
    expect(r.summary).toContain((await readManifest(first)).id);
    const again = fresh('again');
    const back = await importClipCheckpoint({ from: ckpt, out: again, log: quiet });
    expect(back.format).toBe(format);
    const m1 = await readManifest(first);
    expect(back.manifest.id).toBe(m1.id);
    expect(back.manifest.config).toEqual(m1.config);
    const [w1, w2] = [await allWeights(first), await allWeights(again)];
    expect([...w2.keys()]).toEqual([...w1.keys()]);
    for (const [name, bytes] of w1) expect(w2.get(name)!.equals(bytes), name).toBe(true);
  });

  it('across formats: open_clip -> hf -> import, and hf (argmax) -> open_clip -> import, keep the id', async () => {
    for (const [variant, format] of [
      ['openclip-f32-gelu', 'hf'],
      ['hf-f32-quickgelu-argmax', 'open_clip'],
    ] as const) {
      const ckpt = fresh(`cross-${format}`);
      await exportClipCheckpoint({ model: arts.get(variant)!, out: ckpt, format });
      const back = await importClipCheckpoint({ from: ckpt, out: fresh('cross-back'), log: quiet });
      expect(back.manifest.id).toBe((await readManifest(arts.get(variant)!)).id);
    }
  });

  it('HF export: the source tensors come back byte for byte under their names, position_ids buffers included', async () => {
    const variant = 'hf-f32-quickgelu-argmax';
    const ckpt = fresh('hf-bytes');
    const r = await exportClipCheckpoint({ model: arts.get(variant)!, out: ckpt, format: 'hf' });
    expect(r.files).toEqual(['config.json', 'merges.txt', 'model.safetensors', 'preprocessor_config.json', 'special_tokens_map.json', 'tokenizer.json', 'tokenizer_config.json', 'vocab.json']);
    const src = await tensorsOf(path.join(built.get(variant)!.dir, 'model.safetensors'));
    const out = await tensorsOf(path.join(ckpt, 'model.safetensors'));
    expect([...out.keys()].sort()).toEqual([...src.keys()].sort());
    for (const [name, t] of src) {
      const o = out.get(name)!;
      expect(o.dtype, name).toBe(t.dtype);
      expect(o.shape, name).toEqual(t.shape);
      expect(o.raw.equals(t.raw), name).toBe(true);
    }
    expect(out.get('text_model.embeddings.position_ids')!.dtype).toBe('I64');
    const st = await openSafetensors(path.join(ckpt, 'model.safetensors'));
    expect(st.metadata).toEqual({ format: 'pt' });
    await st.close();
  });

  it('open_clip export of an F16 checkpoint at --dtype f16 reproduces the source bytes (the module. prefix is not written back)', async () => {
    const variant = 'openclip-f16-quickgelu-module-prefix';
    const ckpt = fresh('oc-f16');
    await exportClipCheckpoint({ model: arts.get(variant)!, out: ckpt, format: 'open_clip', dtype: 'f16' });
    const src = await tensorsOf(path.join(built.get(variant)!.dir, 'open_clip_model.safetensors'));
    const out = await tensorsOf(path.join(ckpt, 'open_clip_model.safetensors'));
    expect(out.size).toBe(src.size);
    for (const [name, t] of src) {
      const o = out.get(name.replace(/^module\./, ''))!;
      expect(o, name).toBeDefined();
      expect(o.dtype).toBe('F16');
      expect(o.raw.equals(t.raw), name).toBe(true);
    }
  });

  it('f16 export of an F32 model rounds every value to the nearest half', async () => {
    const ckpt = fresh('hf-f16');
    await exportClipCheckpoint({ model: arts.get('hf-f32-quickgelu-argmax')!, out: ckpt, format: 'hf', dtype: 'f16' });
    const st = await openSafetensors(path.join(ckpt, 'model.safetensors'));
    try {
      expect(st.tensors.get('visual_projection.weight')!.dtype).toBe('F16');
      expect(st.tensors.get('vision_model.embeddings.position_ids')!.dtype).toBe('I64');
      const half = await st.readFloat32('text_projection.weight');
      const src = await openSafetensors(path.join(built.get('hf-f32-quickgelu-argmax')!.dir, 'model.safetensors'));
      const full = await src.readFloat32('text_projection.weight');
      await src.close();
      let maxRel = 0;
      let differs = 0;
      for (let i = 0; i < full.length; i++) {
        maxRel = Math.max(maxRel, Math.abs(half[i] - full[i]) / Math.max(Math.abs(full[i]), 2 ** -14));
        if (half[i] !== full[i]) differs++;
      }
      expect(maxRel).toBeLessThanOrEqual(2 ** -11);
      expect(differs).toBeGreaterThan(full.length / 2);
    } finally {
      await st.close();
    }
    expect(JSON.parse(await fs.readFile(path.join(ckpt, 'config.json'), 'utf8')).torch_dtype).toBe('float16');
  });
});

describe('exported configs', () => {
  it('HF config.json: legacy eos_token_id 2 for argmax pooling, the EOT id for eos pooling, activation and shapes kept', async () => {
    for (const [variant, eos, act] of [
      ['hf-f32-quickgelu-argmax', 2, 'quick_gelu'],
      ['hf-f16-gelu-eos', TINY_BPE_EOT_ID, 'gelu'],
      ['openclip-f32-gelu', 2, 'gelu'],
    ] as const) {
      const ckpt = fresh('cfg');
      await exportClipCheckpoint({ model: arts.get(variant)!, out: ckpt, format: 'hf' });
      const cfg = JSON.parse(await fs.readFile(path.join(ckpt, 'config.json'), 'utf8'));
      expect(cfg.model_type).toBe('clip');
      expect(cfg.architectures).toEqual(['CLIPModel']);
      expect(cfg.text_config.eos_token_id).toBe(eos);
      expect(cfg.text_config.hidden_act).toBe(act);
      expect(cfg.vision_config.hidden_act).toBe(act);
      expect(cfg.vision_config).toMatchObject({ hidden_size: 64, intermediate_size: 256, num_hidden_layers: 2, num_attention_heads: 4, image_size: 32, patch_size: 8 });
      expect(cfg.text_config).toMatchObject({ hidden_size: 48, intermediate_size: 192, max_position_embeddings: 77, vocab_size: built.get(variant)!.vocabSize });
      expect(cfg.projection_dim).toBe(32);
      const parsed = parseHfConfig(cfg);
      expect(parsed.activation).toBe(act);
      const pre = JSON.parse(await fs.readFile(path.join(ckpt, 'preprocessor_config.json'), 'utf8'));
      expect(pre).toMatchObject({ image_processor_type: 'CLIPImageProcessor', size: { shortest_edge: 32 }, crop_size: { height: 32, width: 32 }, resample: 3 });
      const tc = JSON.parse(await fs.readFile(path.join(ckpt, 'tokenizer_config.json'), 'utf8'));
      expect(tc.model_max_length).toBe(77);
    }
  });

  it('open_clip config: quick_gelu, head_width and the preprocessing statistics', async () => {
    const ckpt = fresh('oc-cfg');
    await exportClipCheckpoint({ model: arts.get('openclip-f16-quickgelu-module-prefix')!, out: ckpt, format: 'open_clip' });
    const cfg = JSON.parse(await fs.readFile(path.join(ckpt, 'open_clip_config.json'), 'utf8'));
    expect(cfg.model_cfg).toMatchObject({ embed_dim: 32, quick_gelu: true });
    expect(cfg.model_cfg.vision_cfg).toMatchObject({ image_size: 32, layers: 2, width: 64, head_width: 16, patch_size: 8 });
    expect(cfg.model_cfg.text_cfg).toMatchObject({ context_length: 77, vocab_size: 740, width: 48, heads: 4, layers: 2 });
    expect(cfg.preprocess_cfg).toMatchObject({ mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] });
    expect(parseOpenClipConfig(cfg).shapes.visionHeads).toBe(4);
  });
});

describe('refusals', () => {
  it('refuses a Manyfold-family artifact, saying why', async () => {
    const tok = buildTokenizer(['a red circle', 'a blue square'], { maxLen: 8 });
    const config = fakeConfig(tok.vocabSize, 8, 4, 8);
    const dir = fresh('manyfold');
    await saveArtifact(dir, { config, weights: [{ name: 'w', shape: [2], data: Float32Array.of(1, 2) }], tokenizer: tok, training: { method: 'clean' } });
    const err = await exportClipCheckpoint({ model: dir, out: fresh('x'), format: 'hf' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ArtifactError);
    expect((err as Error).message).toMatch(/is a Manyfold-family model .* Only CLIP-family models .* can be exported/s);
  });

  it('refuses open_clip for a model pooling at an eos id open_clip cannot express', async () => {
    // rewrite the eos variant's config so the pooled id is not the largest (argmax would land elsewhere)
    const dir = fresh('eos-mid');
    await fs.cp(arts.get('hf-f16-gelu-eos')!, dir, { recursive: true });
    const m = JSON.parse(await fs.readFile(path.join(dir, 'manifest.json'), 'utf8')) as { config: ModelConfig };
    m.config.clip!.eosTokenId = 5;
    await fs.writeFile(path.join(dir, 'manifest.json'), JSON.stringify(m));
    const err = await exportClipCheckpoint({ model: dir, out: fresh('x'), format: 'open_clip' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CheckpointError);
    expect((err as Error).message).toMatch(/open_clip pools at the argmax of the ids; export with --format hf/);
    // hf-f16-gelu-eos has an added token above EOT: argmax would land on it, so open_clip is refused as it is
    await expect(exportClipCheckpoint({ model: arts.get('hf-f16-gelu-eos')!, out: fresh('x'), format: 'open_clip' })).rejects.toThrow(/open_clip pools at the argmax/);
    // eos at the largest id is the argmax rule: allowed (the same variant without its added token)
    const plain = await buildTinyCheckpoint(path.join(root, 'ckpt', 'eos-no-added'), { ...VARIANTS.find((v) => v.name === 'hf-f16-gelu-eos')!, name: 'eos-no-added', addedTokens: undefined });
    const plainArt = fresh('eos-no-added');
    await importClipCheckpoint({ from: plain.dir, out: plainArt, log: quiet });
    await expect(exportClipCheckpoint({ model: plainArt, out: fresh('ok'), format: 'open_clip' })).resolves.toBeTruthy();
  });

  it('refuses a tampered artifact (sha256) and an existing output directory', async () => {
    const dir = fresh('tampered');
    await fs.cp(arts.get('hf-f32-quickgelu-argmax')!, dir, { recursive: true });
    const shard = path.join(dir, 'weights-000.bin');
    const buf = await fs.readFile(shard);
    buf[100] ^= 1;
    await fs.writeFile(shard, buf);
    await expect(exportClipCheckpoint({ model: dir, out: fresh('x'), format: 'hf' })).rejects.toThrow(/weights-000\.bin failed its sha256 check/);
    const out = fresh('exists');
    await fs.mkdir(out, { recursive: true });
    await expect(exportClipCheckpoint({ model: arts.get('hf-f32-quickgelu-argmax')!, out, format: 'hf' })).rejects.toThrow(/already exists/);
    await expect(exportClipCheckpoint({ model: arts.get('hf-f32-quickgelu-argmax')!, out, format: 'hf', overwrite: true })).resolves.toBeTruthy();
    expect((await fs.readdir(out)).sort()).toContain('model.safetensors');
    // nothing left behind by the failed export
    expect((await fs.readdir(path.join(root, 'out'))).filter((f) => f.startsWith('.'))).toEqual([]);
  });
});

describe('CLI', () => {
  it('manyfold import / export: round trip through the commands, summaries on stdout, errors on stderr with exit 1', async () => {
    const run = (args: string[]) => promisify(execFile)(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], { cwd: REPO });
    const art = fresh('cli-art');
    const a = await run(['import', '--from', built.get('openclip-f32-gelu')!.dir, '--out', art]);
    expect(a.stdout).toMatch(/^imported open_clip openclip-f32-gelu -> .*gelu, argmax pooling; 0\.21M parameters in [\d.]+ s; id mf-[0-9a-f]{12}\n$/);
    const ckpt = fresh('cli-ckpt');
    const b = await run(['export', '--model', art, '--format', 'hf', '--out', ckpt]);
    expect(b.stdout).toMatch(/^exported mf-[0-9a-f]{12} -> .* \(hf, f32\)/);
    const err = await run(['import', '--from', path.join(root, 'nope'), '--out', fresh('cli-bad')]).catch((e: unknown) => e as { code: number; stderr: string });
    expect((err as { code: number }).code).toBe(1);
    expect((err as { stderr: string }).stderr).toMatch(/manyfold: cannot read checkpoint directory/);
  }, 120_000);
});
