import { tf } from '../engine/tf.js';
import { takeData } from '../engine/read.js';
import type { InferenceTowers } from './onnx-towers.js';
import type { DualEncoder, Tokenizer } from './types.js';

/**
 * texts -> row-major [n, E] text embeddings (forward only), one textTower call per `batch` texts. Texts are
 * grouped by token length and each call's ids are cut to its longest sequence: the text tower masks padding
 * (and pools over non-pad tokens only), so trailing padding changes nothing but costs compute (scenes captions
 * average ~16 tokens, maxLen is 32; a single search query is usually far shorter). Each chunk is read back
 * with `await data()` (Dawn, the webgpu backend in Node, has no synchronous read).
 */
export async function embedTextRows(model: DualEncoder, tokenizer: Tokenizer, texts: readonly string[], batch = 512): Promise<Float32Array> {
  const E = model.config.embedDim;
  const plan = planTextRows(tokenizer, texts, batch);
  const out = new Float32Array(texts.length * E);
  for (const c of plan) {
    const emb = tf.tidy(() => model.textTower(tf.tensor2d(c.ids, [c.rows.length, c.len], 'int32')));
    if (emb.shape[0] !== c.rows.length || emb.shape[1] !== E) {
      emb.dispose();
      throw new Error(`textTower returned [${emb.shape}], expected [${c.rows.length}, ${E}]`);
    }
    scatterRows(out, await takeData(emb), c.rows, E);
  }
  return out;
}

/** embedTextRows on a forward-only engine (model/onnx-towers.ts): same grouping, same row order */
export async function embedTextRowsWith(towers: InferenceTowers, dim: number, tokenizer: Tokenizer, texts: readonly string[], batch = 512): Promise<Float32Array> {
  const out = new Float32Array(texts.length * dim);
  for (const c of planTextRows(tokenizer, texts, batch)) scatterRows(out, await towers.textRows(c.ids, c.rows.length, c.len), c.rows, dim);
  return out;
}

interface TextChunk {
  /** the texts' indices, in chunk row order */
  rows: number[];
  /** [rows.length, len] ids */
  ids: Int32Array;
  len: number;
}

function planTextRows(tokenizer: Tokenizer, texts: readonly string[], batch: number): TextChunk[] {
  if (!Number.isInteger(batch) || batch < 1) throw new Error(`embedTextRows: batch must be a positive integer, got ${batch}`);
  const L = tokenizer.maxLen;
  const n = texts.length;
  if (n === 0) return [];
  const ids = tokenizer.encodeBatch(texts as string[]);
  const len = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    let l = L;
    while (l > 1 && ids[i * L + l - 1] === 0) l--;
    len[i] = l;
  }
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => len[a] - len[b] || a - b);
  const chunks: TextChunk[] = [];
  for (let s = 0; s < n; s += batch) {
    const rows = order.slice(s, s + batch);
    const Lc = len[rows[rows.length - 1]];
    const chunk = new Int32Array(rows.length * Lc);
    rows.forEach((i, r) => chunk.set(ids.subarray(i * L, i * L + Lc), r * Lc));
    chunks.push({ rows, ids: chunk, len: Lc });
  }
  return chunks;
}

function scatterRows(out: Float32Array, rows: Float32Array, index: readonly number[], E: number): void {
  index.forEach((i, r) => out.set(rows.subarray(r * E, (r + 1) * E), i * E));
}
