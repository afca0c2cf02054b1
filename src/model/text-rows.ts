import { tf } from '../engine/tf.js';
import type { DualEncoder, Tokenizer } from './types.js';

/**
 * texts -> row-major [n, E] text embeddings (forward only), one textTower call per `batch` texts. Texts are
 * grouped by token length and each call's ids are cut to its longest sequence: the text tower masks padding
 * (and pools over non-pad tokens only), so trailing padding changes nothing but costs compute (scenes captions
 * average ~16 tokens, maxLen is 32; a single search query is usually far shorter).
 */
export function embedTextRows(model: DualEncoder, tokenizer: Tokenizer, texts: readonly string[], batch = 512): Float32Array {
  if (!Number.isInteger(batch) || batch < 1) throw new Error(`embedTextRows: batch must be a positive integer, got ${batch}`);
  const E = model.config.embedDim;
  const L = tokenizer.maxLen;
  const n = texts.length;
  const out = new Float32Array(n * E);
  if (n === 0) return out;
  const ids = tokenizer.encodeBatch(texts as string[]);
  const len = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    let l = L;
    while (l > 1 && ids[i * L + l - 1] === 0) l--;
    len[i] = l;
  }
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => len[a] - len[b] || a - b);
  for (let s = 0; s < n; s += batch) {
    const rowsIdx = order.slice(s, s + batch);
    const m = rowsIdx.length;
    const Lc = len[rowsIdx[m - 1]];
    const chunk = new Int32Array(m * Lc);
    rowsIdx.forEach((i, r) => chunk.set(ids.subarray(i * L, i * L + Lc), r * Lc));
    const rows = tf.tidy(() => {
      const emb = model.textTower(tf.tensor2d(chunk, [m, Lc], 'int32'));
      if (emb.shape[0] !== m || emb.shape[1] !== E) throw new Error(`textTower returned [${emb.shape}], expected [${m}, ${E}]`);
      return emb.dataSync() as Float32Array;
    });
    rowsIdx.forEach((i, r) => out.set(rows.subarray(r * E, (r + 1) * E), i * E));
  }
  return out;
}
