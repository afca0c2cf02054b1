/** Reports from a robust eval of the real tiny dual encoder (untrained, wasm backend: the production path). */
import { describe, it, expect, beforeAll } from 'vitest';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initBackend } from '../../src/engine/backend.js';
import { createDualEncoder, modelConfigFromPreset } from '../../src/model/dual-encoder.js';
import { buildTokenizer } from '../../src/model/tokenizer.js';
import { Encoder } from '../../src/model/encoder.js';
import type { DatasetSplit } from '../../src/data/types.js';
import { evaluateRobust, type RobustEvalResult } from '../../src/eval/robust.js';
import { renderMarkdown, robustnessCurveSvg, writeReports } from '../../src/eval/report/index.js';
import { Rng } from '../../src/util/rng.js';
import { CAPTIONS } from '../attacks/helpers.js';

let result: RobustEvalResult;

beforeAll(async () => {
  await initBackend('wasm');
  const tokenizer = buildTokenizer(CAPTIONS, { maxLen: 16 });
  const model = createDualEncoder(modelConfigFromPreset('tiny', tokenizer.vocabSize), 0);
  const S = model.config.image.size;
  const n = 4;
  const rng = new Rng(5);
  const split: DatasetSplit = {
    name: 'test',
    size: S,
    count: n,
    images: Uint8Array.from({ length: n * S * S * 3 }, () => rng.int(256)),
    imageIds: ['a.png', 'b.png', 'c.png', 'd.png'],
    captions: CAPTIONS.slice(0, 2 * n),
    captionToImage: Int32Array.from({ length: 2 * n }, (_, i) => Math.floor(i / 2)),
    imageToCaptions: Array.from({ length: n }, (_, i) => [2 * i, 2 * i + 1]),
    skipped: [],
  };
  const encoder = new Encoder(model, tokenizer, { id: 'tiny-untrained' });
  result = await evaluateRobust(encoder, split, { attacks: ['pgd', 'sga', 'text'], eps255: [2, 8], steps: 2, seed: 3, resamples: 100, examples: 2 });
});

describe('robust reports', () => {
  it('JSON keeps the clean keys and adds attacks / worst / robust / sanity', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'manyfold-report-'));
    const files = await writeReports(result.report, result.examples, { json: join(dir, 'r.json'), md: join(dir, 'r.md'), html: join(dir, 'r.html') }, { command: 'manyfold eval --attack pgd,sga,text' });
    expect(files).toHaveLength(3);
    const j = JSON.parse(readFileSync(join(dir, 'r.json'), 'utf8'));
    for (const k of ['model', 'data', 'split', 'clean', 'nImages', 'nTexts', 'protocol', 'seconds', 'robust', 'attacks', 'worst', 'sanity']) expect(j).toHaveProperty(k);
    expect(Object.keys(j.attacks)).toEqual(['pgd@2', 'pgd@8', 'sga@2', 'sga@8', 'text']);
    expect(j.attacks['sga@8']).toHaveProperty('tr.r1');
    expect(j.attacks['sga@8']).toHaveProperty('ir.r10');
    expect(j.attacks['sga@8']).toHaveProperty('asr.tr.r1');
    expect(j.attacks['sga@8']).toHaveProperty('ci.tr.r1');
    expect(j.attacks['sga@8'].protocol).toMatchObject({ side: 'query', eps255: 8, steps: 2, words: 1, seed: 3 });
    expect(Object.keys(j.worst)).toEqual(['2', '8']);
    expect(j.robust).toMatchObject({ side: 'query', eps255: [2, 8], steps: 2, seed: 3, split: 'test' });

    const html = readFileSync(join(dir, 'r.html'), 'utf8');
    expect(html).toContain('<svg');
    expect(html).toContain('<polyline');
    expect(html).toContain('data:image/png;base64,');
    expect(html).not.toMatch(/<script|https?:\/\/(?!www\.w3\.org)/); // self-contained: no scripts, no external URLs
    expect(html).toContain('side=query');
    const md = readFileSync(join(dir, 'r.md'), 'utf8');
    expect(md).toContain('| attack | threat | eps/255 |');
    expect(md).toContain('sga@8');
    expect(md).toMatch(/\*\*Protocol:\*\* .*side=query; eps 2, 8 \/255.*steps 2.*seed 3/);
  });

  it('the curve has one polyline per image attack plus the worst case; examples carry pixels and captions', () => {
    const svg = robustnessCurveSvg(result.report, 'tr', 1);
    expect(svg.match(/<polyline/g)).toHaveLength(3); // pgd, sga, worst case
    expect(svg).toContain('text (no eps)');
    expect(result.examples).toHaveLength(2);
    const ex = result.examples[0];
    expect(ex.adv!.length).toBe(ex.size * ex.size * 3);
    expect(ex.linf255).toBeLessThanOrEqual(8 + 1e-3);
    expect(typeof ex.captionOriginal).toBe('string');
    expect(renderMarkdown(result.report)).toContain('Worst case per query');
  });
});
