/**
 * Publish benchmark: `manyfold publish`'s code path (src/publish/publish.ts) uploading an untrained model artifact
 * (tiny and small presets; upload cost depends on bytes, not training) to s3rver on 127.0.0.1 (the local S3 API
 * stand-in of the tests, test/publish/s3rver.ts: real HTTP and signed requests, objects on local disk, so the time
 * is the client's work plus a local server's, not a network's). Per preset: the first publish (every object
 * uploaded, re-read and hashed, catalogue written), then a rerun (every object found and verified, nothing
 * written). Prints the figures and writes JSON.
 *
 *   node --import tsx scripts/bench-publish.ts [--presets tiny,small] [--json docs/bench/publish-s3rver.json]
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { initBackend } from '../src/engine/backend.js';
import { saveArtifact } from '../src/model/artifact.js';
import { createDualEncoder, modelConfigFromPreset } from '../src/model/dual-encoder.js';
import { buildTokenizer } from '../src/model/tokenizer.js';
import { publishArtifact } from '../src/publish/publish.js';
import { SAMPLE_CAPTIONS } from '../test/fixtures/captions.js';
import { S3RVER_ENV, startS3rver } from '../test/publish/s3rver.js';

const args = parseArgs({ options: { presets: { type: 'string', default: 'tiny,small' }, json: { type: 'string' } } }).values;
Object.assign(process.env, S3RVER_ENV);
await initBackend('wasm');
const work = mkdtempSync(join(tmpdir(), 'manyfold-bench-publish-'));
const s3 = await startS3rver();
const rows: Record<string, unknown>[] = [];
try {
  const tok = buildTokenizer([...SAMPLE_CAPTIONS], { maxLen: 32 });
  for (const preset of args.presets!.split(',') as ('tiny' | 'small')[]) {
    const model = createDualEncoder(modelConfigFromPreset(preset, tok.vocabSize), 0);
    const dir = join(work, preset);
    const m = await saveArtifact(dir, { model, tokenizer: tok, training: { seed: 0, method: 'untrained (bench)' }, created: new Date('2026-01-01T00:00:00Z') });
    model.dispose();
    const first = await publishArtifact(dir, `s3://${s3.bucket}/bench`, { endpoint: s3.endpoint });
    const rerun = await publishArtifact(dir, `s3://${s3.bucket}/bench`, { endpoint: s3.endpoint });
    const row = {
      preset,
      id: m.id,
      objects: first.objects.length,
      bytes: first.objects.reduce((a, o) => a + o.bytes, 0),
      firstPublishMs: first.ms,
      uploadedObjects: first.uploaded.objects,
      rerunMs: rerun.ms,
      rerunUploadedObjects: rerun.uploaded.objects,
      catalogChangedOnRerun: rerun.catalog.changed,
    };
    rows.push(row);
    console.log(
      `${preset}: ${row.objects} objects, ${row.bytes} bytes; first publish ${row.firstPublishMs} ms (${row.uploadedObjects} uploaded + catalogue); rerun ${row.rerunMs} ms (${row.rerunUploadedObjects} uploaded, catalogue ${row.catalogChangedOnRerun ? 'changed' : 'unchanged'})`,
    );
  }
} finally {
  await s3.close();
  rmSync(work, { recursive: true, force: true });
}
const out = { bench: 'publish to s3rver (local S3 API stand-in)', date: new Date().toISOString(), node: process.version, cpus: cpus().length, concurrency: 4, rows };
if (args.json) writeFileSync(args.json, `${JSON.stringify(out, null, 2)}\n`);
