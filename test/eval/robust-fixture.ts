/**
 * A small retrieval problem the fake linear encoder solves by construction: image i = 0.5 + a * (t_i W^T),
 * t_i the mean text embedding of its captions, so clean retrieval is near perfect and a small L-inf budget
 * can move it (the image tower is linear).
 */
import { tf } from '../../src/engine/tf.js';
import { Encoder } from '../../src/model/encoder.js';
import { buildTokenizer } from '../../src/model/tokenizer.js';
import { embedTextRows } from '../../src/attacks/index.js';
import type { DatasetSplit } from '../../src/data/types.js';
import { fakeEncoder } from '../attacks/helpers.js';

const COLORS = ['red', 'blue', 'green', 'yellow', 'purple', 'orange', 'white', 'black', 'brown', 'pink', 'gray', 'golden'];
const SHAPES = ['circle', 'square', 'triangle', 'star', 'heart', 'moon'];

export async function robustFixture(opts: { nImages?: number; size?: number; dim?: number; contrast?: number } = {}) {
  const n = opts.nImages ?? 12;
  const S = opts.size ?? 8;
  const captions: string[] = [];
  const c2i: number[] = [];
  const i2c: number[][] = [];
  for (let i = 0; i < n; i++) {
    const c = COLORS[i % COLORS.length];
    const s = SHAPES[(i * 5) % SHAPES.length];
    const big = i % 2 ? 'large' : 'small';
    i2c.push([captions.length, captions.length + 1]);
    captions.push(`a ${big} ${c} ${s}`, `${c} ${s} ${big}`);
    c2i.push(i, i);
  }
  const tokenizer = buildTokenizer(captions, { maxLen: 16 });
  const model = fakeEncoder({ size: S, dim: opts.dim ?? 32, vocabSize: tokenizer.vocabSize, maxLen: tokenizer.maxLen, seed: 3 });
  const E = model.config.embedDim;
  const D = S * S * 3;
  const txt = await embedTextRows(model, tokenizer, captions);
  const W = model.variables.get('W')!.dataSync() as Float32Array; // [D, E]
  const images = new Uint8Array(n * D);
  for (let i = 0; i < n; i++) {
    const t = new Float32Array(E);
    for (const c of i2c[i]) for (let k = 0; k < E; k++) t[k] += txt[c * E + k];
    const x = new Float32Array(D);
    let mx = 0;
    for (let p = 0; p < D; p++) {
      let s = 0;
      for (let k = 0; k < E; k++) s += W[p * E + k] * t[k];
      x[p] = s;
      mx = Math.max(mx, Math.abs(s));
    }
    for (let p = 0; p < D; p++) images[i * D + p] = Math.round(255 * (0.5 + ((opts.contrast ?? 0.35) * x[p]) / mx));
  }
  const split: DatasetSplit = {
    name: 'test',
    size: S,
    count: n,
    images,
    imageIds: Array.from({ length: n }, (_, i) => `img${i}.png`),
    captions,
    captionToImage: Int32Array.from(c2i),
    imageToCaptions: i2c,
    skipped: [],
  };
  const encoder = new Encoder(model, tokenizer, { id: 'fake-linear' });
  return { split, encoder, model, tokenizer, tf };
}
