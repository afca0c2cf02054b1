/**
 * Random translation of training images (training/batches.ts translateBatch, `--shift`): every image moves by its
 * own seeded offset within the bound, content moves rigidly (relative positions kept), borders replicate the edge,
 * and shift 0 leaves the batch untouched.
 */
import { describe, expect, it } from 'vitest';
import { Rng } from '../../src/util/rng.js';
import { translateBatch } from '../../training/batches.js';

const S = 12;
const per = S * S * 3;
/** images on a 0.5 background with two single-pixel markers (red at a, green at b) */
function markers(count: number, a: [number, number], b: [number, number]): Float32Array {
  const px = new Float32Array(count * per).fill(0.5);
  for (let k = 0; k < count; k++) {
    px[k * per + (a[0] * S + a[1]) * 3] = 1;
    px[k * per + (b[0] * S + b[1]) * 3 + 1] = 1;
  }
  return px;
}
function find(px: Float32Array, k: number, channel: number): [number, number][] {
  const out: [number, number][] = [];
  for (let p = 0; p < S * S; p++) if (px[k * per + p * 3 + channel] === 1) out.push([Math.floor(p / S), p % S]);
  return out;
}

describe('translateBatch', () => {
  it('moves every image rigidly by an offset within [-shift, shift], drawn per image from the seed', () => {
    const count = 40;
    const px = markers(count, [4, 3], [6, 8]);
    translateBatch(px, count, S, 2, new Rng(5));
    const offsets = new Set<string>();
    for (let k = 0; k < count; k++) {
      const [red] = find(px, k, 0);
      const [green] = find(px, k, 1);
      expect(find(px, k, 0)).toHaveLength(1);
      const dy = red[0] - 4;
      const dx = red[1] - 3;
      expect(Math.abs(dy)).toBeLessThanOrEqual(2);
      expect(Math.abs(dx)).toBeLessThanOrEqual(2);
      expect([green[0] - 6, green[1] - 8]).toEqual([dy, dx]); // relative position kept
      offsets.add(`${dy},${dx}`);
    }
    expect(offsets.size).toBeGreaterThan(10); // not one offset for the batch: up to 25 possible
  });

  it('is deterministic by seed and differs across seeds', () => {
    const a = markers(8, [5, 5], [1, 1]);
    const b = markers(8, [5, 5], [1, 1]);
    const c = markers(8, [5, 5], [1, 1]);
    translateBatch(a, 8, S, 3, new Rng(1));
    translateBatch(b, 8, S, 3, new Rng(1));
    translateBatch(c, 8, S, 3, new Rng(2));
    expect(a).toEqual(b);
    expect(a).not.toEqual(c);
  });

  it('replicates the edge into the uncovered border', () => {
    // a gradient image: value = column / S in every channel; shifting right by dx copies column 0 into the first dx columns
    const px = new Float32Array(per);
    for (let y = 0; y < S; y++) for (let x = 0; x < S; x++) for (let c = 0; c < 3; c++) px[(y * S + x) * 3 + c] = x / S;
    let rng: Rng;
    let dx = 0;
    let seed = 0;
    do {
      rng = new Rng(++seed);
      const probe = new Rng(seed);
      probe.int(5);
      dx = probe.int(5) - 2;
    } while (dx <= 0);
    translateBatch(px, 1, S, 2, rng);
    for (let y = 0; y < S; y++) {
      for (let x = 0; x < S; x++) expect(px[(y * S + x) * 3]).toBeCloseTo(Math.max(0, x - dx) / S, 6);
    }
  });

  it('leaves the batch untouched when shift is 0', () => {
    const px = markers(3, [2, 2], [9, 9]);
    const before = px.slice();
    translateBatch(px, 3, S, 0, new Rng(3));
    expect(px).toEqual(before);
  });
});
