/**
 * Loading a model artifact without a filesystem: the same format as src/model/artifact.ts (manifest.json,
 * tokenizer.json, weights-*.bin, sha256 of every file checked before use), read through a `readFile(name)`
 * callback (a Workers static asset, an R2/S3 object, a bundled module, a Map in tests).
 */
import { tf } from '../engine/tf.js';
import { ArtifactError, manifestSchema, MANIFEST_FILE, type ArtifactManifest } from '../model/artifact.js';
import { createDualEncoder } from '../model/dual-encoder.js';
import { Encoder } from '../model/encoder.js';
import { tokenizerFromJSON } from '../model/tokenizer.js';
import type { ModelConfig } from '../model/types.js';

export type ReadFile = (name: string) => Promise<Uint8Array>;

export async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const d = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes as BufferSource));
  let s = '';
  for (const b of d) s += b.toString(16).padStart(2, '0');
  return s;
}

export async function readManifestFrom(read: ReadFile): Promise<ArtifactManifest> {
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder().decode(await read(MANIFEST_FILE)));
  } catch (e) {
    throw new ArtifactError(`${MANIFEST_FILE}: ${(e as Error).message}`, MANIFEST_FILE);
  }
  const r = manifestSchema.safeParse(json);
  if (!r.success) throw new ArtifactError(`${MANIFEST_FILE}: ${r.error.issues[0]?.path.join('.')}: ${r.error.issues[0]?.message}`, MANIFEST_FILE);
  return r.data as ArtifactManifest;
}

/** Manifest -> verified files -> Encoder (weights assigned by name; shapes checked). */
export async function loadEncoderFrom(read: ReadFile): Promise<{ encoder: Encoder; manifest: ArtifactManifest; bytes: number }> {
  const manifest = await readManifestFrom(read);
  const contents = new Map<string, Uint8Array>();
  let bytes = 0;
  for (const f of manifest.files) {
    const buf = await read(f.path);
    if (buf.length !== f.bytes) throw new ArtifactError(`artifact file ${f.path}: ${buf.length} bytes, manifest says ${f.bytes}`, f.path);
    const h = await sha256Hex(buf);
    if (h !== f.sha256) throw new ArtifactError(`artifact file ${f.path}: sha256 mismatch`, f.path);
    contents.set(f.path, buf);
    bytes += buf.length;
  }
  const tokenizer = tokenizerFromJSON(JSON.parse(new TextDecoder().decode(contents.get(manifest.tokenizer.file))));
  const seed = typeof manifest.training.seed === 'number' ? manifest.training.seed : 0;
  const model = createDualEncoder(manifest.config as ModelConfig, seed);
  try {
    if (model.variables.size !== manifest.weights.length) throw new ArtifactError(`artifact has ${manifest.weights.length} weights, the model ${model.variables.size}`);
    for (const w of manifest.weights) {
      const v = model.variables.get(w.name);
      if (!v) throw new ArtifactError(`weight ${w.name} is not in the model`, w.file);
      if (v.shape.length !== w.shape.length || v.shape.some((d, i) => d !== w.shape[i])) throw new ArtifactError(`weight ${w.name}: shape [${w.shape}] != [${v.shape}]`, w.file);
      const buf = contents.get(w.file)!;
      const n = w.shape.reduce((a, b) => a * b, 1);
      const vals = new Float32Array(n);
      new Uint8Array(vals.buffer).set(buf.subarray(w.offset, w.offset + n * 4));
      tf.tidy(() => v.assign(tf.tensor(vals, w.shape, 'float32')));
    }
  } catch (e) {
    model.dispose();
    throw e;
  }
  return { encoder: new Encoder(model, tokenizer, manifest), manifest, bytes };
}
