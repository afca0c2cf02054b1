import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exportSims, readSims } from '../../src/eval/export-sims.js';
import { computeRecall } from '../../src/eval/recall.js';
import { Rng } from '../../src/util/rng.js';

let root: string;
beforeAll(async () => {
  root = await fs.mkdtemp(path.join(os.tmpdir(), 'mf-sims-'));
});
afterAll(async () => {
  if (root) await fs.rm(root, { recursive: true, force: true });
});

function problem(nI: number, per: number, seed: number) {
  const rng = new Rng(seed);
  const nT = nI * per;
  const captionToImage = Int32Array.from({ length: nT }, (_, t) => t % nI);
  const imageToCaptions = Array.from({ length: nI }, (_, i) => Array.from({ length: per }, (_, k) => i + k * nI));
  const sims = new Float32Array(nI * nT);
  for (let i = 0; i < nI; i++) {
    for (let t = 0; t < nT; t++) sims[i * nT + t] = rng.normal() + (captionToImage[t] === i ? 1.5 : 0);
  }
  return { nI, nT, sims, captionToImage, imageToCaptions };
}

describe('exportSims / readSims', () => {
  it('round-trips and recall recomputed from the files matches', async () => {
    const p = problem(40, 5, 3);
    const prefix = path.join(root, 'run1', 'test-clean');
    const out = await exportSims(prefix, p.sims, p.nI, p.nT, p.captionToImage, p.imageToCaptions);
    expect(out).toEqual({ json: `${prefix}.json`, bin: `${prefix}.bin` });

    const json = JSON.parse(await fs.readFile(out.json, 'utf8'));
    expect(json.shape).toEqual([40, 200]);
    expect(json.txt2img).toEqual(Array.from(p.captionToImage));
    expect(json.img2txt).toEqual(p.imageToCaptions);
    const bin = await fs.readFile(out.bin);
    expect(bin.byteLength).toBe(40 * 200 * 4);
    expect(bin.readFloatLE(4 * 7)).toBe(p.sims[7]); // little-endian, row-major

    const back = await readSims(prefix);
    expect(back.nImages).toBe(40);
    expect(back.nTexts).toBe(200);
    expect(back.sims).toEqual(p.sims);
    const r1 = computeRecall(p.sims, p.nI, p.nT, p);
    const r2 = computeRecall(back.sims, back.nImages, back.nTexts, back);
    expect(r2.tr.recall).toEqual(r1.tr.recall);
    expect(r2.ir.recall).toEqual(r1.ir.recall);
    expect(Array.from(r2.tr.rank)).toEqual(Array.from(r1.tr.rank));
    expect(Array.from(r2.ir.rank)).toEqual(Array.from(r1.ir.rank));
    expect(r1.tr.recall[10]).toBeGreaterThan(0); // a non-trivial problem
    expect((await fs.readdir(path.dirname(prefix))).sort()).toEqual(['test-clean.bin', 'test-clean.json']);
  });

  it('rejects inconsistent input and damaged files with clear errors', async () => {
    const p = problem(4, 2, 1);
    const prefix = path.join(root, 'bad');
    await expect(exportSims(prefix, p.sims, 4, 7, p.captionToImage, p.imageToCaptions)).rejects.toThrow(/expected 4 x 7/);
    await expect(exportSims(prefix, p.sims, 4, 8, Int32Array.from([0, 1, 2, 3, 0, 1, 2, 9]), p.imageToCaptions)).rejects.toThrow(
      /txt2img\.7: image index 9 >= nImages 4/,
    );
    await exportSims(prefix, p.sims, 4, 8, p.captionToImage, p.imageToCaptions);
    await fs.truncate(`${prefix}.bin`, 12);
    await expect(readSims(prefix)).rejects.toThrow(/bad\.bin has 12 bytes, expected 4 x 8 x 4 = 128/);
    await fs.writeFile(`${prefix}.json`, JSON.stringify({ shape: [4], txt2img: [], img2txt: [] }));
    await expect(readSims(prefix)).rejects.toThrow(/invalid .*bad\.json: shape/);
    await expect(readSims(path.join(root, 'nope'))).rejects.toThrow(/cannot read .*nope\.json/);
  });
});
