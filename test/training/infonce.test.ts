/**
 * Multi-positive InfoNCE (training/losses/clip.ts) against a float64 reference written out in plain loops, with
 * and without hard negatives: negative texts join only the image->text denominators, negative images only the
 * text->image ones.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { tf } from '../../src/engine/tf.js';
import { initBackend } from '../../src/engine/backend.js';
import { Rng } from '../../src/util/rng.js';
import { multiPositiveInfoNce } from '../../training/losses/clip.js';

const rng = new Rng(21);
const E = 6;
const rows = (n: number) =>
  Array.from({ length: n }, () => {
    const v = Array.from({ length: E }, () => rng.next() * 2 - 1);
    const norm = Math.hypot(...v);
    return v.map((x) => x / norm);
  });
const dot = (a: number[], b: number[]) => a.reduce((s, x, i) => s + x * b[i], 0);
const lse = (xs: number[]) => {
  const m = Math.max(...xs);
  return m + Math.log(xs.reduce((s, x) => s + Math.exp(x - m), 0));
};

function reference(img: number[][], txt: number[][], owner: number[], scale: number, neg: number[][], negImg: number[][] = []): number {
  const l = img.map((i) => txt.map((t) => scale * dot(i, t)));
  const ln = img.map((i) => neg.map((t) => scale * dot(i, t)));
  const i2t = img.map((_, r) => lse([...l[r], ...ln[r]]) - lse(l[r].filter((_, j) => owner[j] === r)));
  const t2i = txt.map((t, j) => lse([...img.map((__, r) => l[r][j]), ...negImg.map((n) => scale * dot(n, t))]) - l[owner[j]][j]);
  return (i2t.reduce((a, b) => a + b, 0) / img.length + t2i.reduce((a, b) => a + b, 0) / txt.length) / 2;
}

beforeAll(async () => {
  await initBackend('wasm');
});

describe('multiPositiveInfoNce', () => {
  const img = rows(4);
  const txt = rows(8);
  const owner = [0, 0, 1, 1, 2, 2, 3, 3];
  const neg = rows(5);
  const scale = 7;
  const negImg = rows(3);
  const run = (negatives?: number[][], negativeImages?: number[][]) =>
    tf.tidy(
      () =>
        multiPositiveInfoNce(tf.tensor2d(img), tf.tensor2d(txt), Int32Array.from(owner), tf.scalar(scale), {
          texts: negatives ? tf.tensor2d(negatives) : undefined,
          images: negativeImages ? tf.tensor2d(negativeImages) : undefined,
        }).dataSync()[0],
    );

  it('equals the reference without negatives', () => {
    expect(run()).toBeCloseTo(reference(img, txt, owner, scale, []), 5);
  });

  it('equals the reference with hard negatives, which only raise the image->text term', () => {
    const withNeg = run(neg);
    expect(withNeg).toBeCloseTo(reference(img, txt, owner, scale, neg), 5);
    expect(withNeg).toBeGreaterThan(run());
  });

  it('equals the reference with hard negative images, alone and next to negative texts', () => {
    const withImg = run(undefined, negImg);
    expect(withImg).toBeCloseTo(reference(img, txt, owner, scale, [], negImg), 5);
    expect(withImg).toBeGreaterThan(run());
    expect(run(neg, negImg)).toBeCloseTo(reference(img, txt, owner, scale, neg, negImg), 5);
  });
});
