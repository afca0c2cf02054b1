/**
 * training/checkpoint.ts streams tensors in and out one at a time (CLIP-sized checkpoints exceed Node's 2 GiB
 * single-read limit): what is read back is bit-identical, and a truncated or altered payload is refused.
 */
import { mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { tf } from '../../src/engine/tf.js';
import { initBackend } from '../../src/engine/backend.js';
import { Rng } from '../../src/util/rng.js';
import { readCheckpoint, writeCheckpoint } from '../../training/checkpoint.js';

let dir: string;
beforeAll(async () => {
  await initBackend('wasm');
  dir = mkdtempSync(join(tmpdir(), 'mf-ckpt-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

it('round-trips every tensor bit for bit and refuses truncated or altered payloads', async () => {
  const rng = new Rng(1);
  const shapes: [string, number[]][] = [['w/a', [3, 5]], ['w/scalar', []], ['m/a', [3, 5]], ['v/big', [1000, 37]]];
  const tensors = new Map(shapes.map(([n, s]) => [n, tf.tensor(Float32Array.from({ length: s.reduce((a, b) => a * b, 1) }, () => rng.normal()), s, 'float32')]));
  const path = join(dir, 'c.mfck');
  await writeCheckpoint(path, { step: 7, note: 'ünïcode' }, tensors);
  const back = readCheckpoint<{ step: number; note: string }>(path);
  expect(back.state).toEqual({ step: 7, note: 'ünïcode' });
  expect([...back.tensors.keys()]).toEqual(shapes.map(([n]) => n));
  for (const [n, t] of tensors) {
    const b = back.tensors.get(n)!;
    expect(b.shape).toEqual(t.shape);
    const a = t.dataSync() as Float32Array;
    expect(b.data.every((v, i) => Object.is(v, a[i])), n).toBe(true);
  }
  const bytes = readFileSync(path);
  const flipped = Buffer.from(bytes);
  flipped[flipped.length - 5] ^= 1;
  writeFileSync(join(dir, 'flipped.mfck'), flipped);
  expect(() => readCheckpoint(join(dir, 'flipped.mfck'))).toThrow(/payload hash mismatch/);
  writeFileSync(join(dir, 'short.mfck'), bytes);
  truncateSync(join(dir, 'short.mfck'), bytes.length - 8);
  expect(() => readCheckpoint(join(dir, 'short.mfck'))).toThrow(/truncated or corrupt/);
  for (const t of tensors.values()) t.dispose();
});
