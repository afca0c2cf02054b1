/**
 * Node side of the workerd tests: builds dist/worker-assets-test (a tiny untrained model artifact and a
 * memory-index snapshot of a few captions and solid-colour images embedded with it), the assets that
 * `wrangler -e test` (infra/wrangler.jsonc) serves to the Worker. Deterministic: the same bytes every run.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { buildWorkerAssets } from '../../infra/build-worker-assets.js';
import { physicalNamespace } from '../../src/api/service.js';
import { modelTag } from '../../src/api/registry.js';
import { initBackend } from '../../src/engine/backend.js';
import { MemoryIndex } from '../../src/index/memory.js';
import { saveArtifact } from '../../src/model/artifact.js';
import { createDualEncoder, modelConfigFromPreset } from '../../src/model/dual-encoder.js';
import { Encoder } from '../../src/model/encoder.js';
import { buildTokenizer } from '../../src/model/tokenizer.js';
import { SAMPLE_CAPTIONS } from '../fixtures/captions.js';

export const CAPTIONS = [...SAMPLE_CAPTIONS];
export const COLORS: [number, number, number][] = [
  [220, 30, 30],
  [30, 200, 40],
  [30, 40, 220],
  [240, 220, 20],
];

export const TEST_ASSETS = resolve('dist/worker-assets-test');

export async function buildTestAssets(outDir = TEST_ASSETS): Promise<{ model: string; candidate: string }> {
  await initBackend('wasm');
  const tok = buildTokenizer(CAPTIONS, { maxLen: 32 });
  const model = createDualEncoder(modelConfigFromPreset('tiny', tok.vocabSize), 1);
  const work = mkdtempSync(join(tmpdir(), 'manyfold-worker-fixture-'));
  try {
    const dir = join(work, 'model');
    const m = await saveArtifact(dir, { model, tokenizer: tok, training: { seed: 1, method: 'untrained (workerd test)' }, created: new Date('2026-01-01T00:00:00Z') });
    const enc = new Encoder(model, tok, m);
    const tag = modelTag(m.id);
    const index = new MemoryIndex();
    const txt = await enc.embedTexts(CAPTIONS);
    await index.upsert(
      physicalNamespace('snap', tag, 'texts'),
      txt.map((v, i) => ({ id: `cap${i}#0`, values: v, metadata: { _item: `cap${i}`, _caption: 0, _text: CAPTIONS[i], k: i } })),
    );
    const S = enc.imageSize;
    const px = new Uint8Array(COLORS.length * S * S * 3);
    COLORS.forEach((c, i) => {
      for (let p = 0; p < S * S; p++) px.set(c, (i * S * S + p) * 3);
    });
    const img = await enc.embedImages(px, COLORS.length);
    await index.upsert(
      physicalNamespace('snap', tag, 'images'),
      img.map((v, i) => ({ id: `color${i}`, values: v, metadata: { rgb: COLORS[i].join(',') } })),
    );
    const snap = join(work, 'snapshot.mfvi');
    await writeFile(snap, index.toBinary());
    // a second model (a re-index target): same tokenizer, other seed
    const model2 = createDualEncoder(modelConfigFromPreset('tiny', tok.vocabSize), 2);
    const dir2 = join(work, 'model2');
    const m2 = await saveArtifact(dir2, { model: model2, tokenizer: tok, training: { seed: 2, method: 'untrained (workerd test)' }, created: new Date('2026-01-01T00:00:00Z') });
    model2.dispose();
    await buildWorkerAssets({ modelDirs: [dir, dir2], outDir, snapshot: snap });
    return { model: m.id, candidate: m2.id };
  } finally {
    model.dispose();
    rmSync(work, { recursive: true, force: true });
  }
}
