/**
 * Probing retrieval systems Manyfold does not own (issue 22): the robust-recall runner over the remote rank source
 * (src/probe/remote.ts, the TargetClient), against
 * real HTTP servers on 127.0.0.1 started here:
 * - a small NON-Manyfold near-duplicate search service written in this test (its own routes, request and response
 *   shapes, distances instead of scores) that embeds with a tiny random dual encoder: an image query returns the
 *   items whose stored image embedding is nearest, a text query the items whose stored caption is nearest. Clean
 *   recall is therefore 100% by construction (a query equals its stored copy), and every miss is the attack's;
 * - a Manyfold API over HTTP with another seed's model (a foreign Manyfold deployment);
 * - misbehaving targets (401, malformed JSON).
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/engine/backend.js';
import * as tf from '../../src/engine/tf.js';
import { createDualEncoder, modelConfigFromPreset } from '../../src/model/dual-encoder.js';
import { saveArtifact } from '../../src/model/artifact.js';
import { buildTokenizer } from '../../src/model/tokenizer.js';
import type { DualEncoder, Tokenizer } from '../../src/model/types.js';
import { checkBars, parseFailBelow, renderRobustMarkdown, runRobustProbe, type ProbeQuerySet, type RobustProbeOptions } from '../../src/eval/robust/index.js';
import { RemoteRankSource } from '../../src/probe/remote.js';
import type { WireEncoding } from '../../src/probe/wire.js';
import { parseTargetSpec, TargetClient } from '../../src/probe/target/index.js';
import { encodeImage, quantize, roundTrip } from '../../src/probe/wire.js';
import { manyfoldTarget } from './manyfold-target.js';
import { Rng } from '../../src/util/rng.js';
import { CAPTIONS, KEYS, client, makeModels, start } from '../api/helpers.js';

const exec = promisify(execFile);
const S = 32;
const N = 12;

let root: string;
let model: DualEncoder;
let tokenizer: Tokenizer;
let captions: string[];
let images: Uint8Array;

/** distinct captions, two per image */
function makeCaptions(): string[] {
  const colors = ['red', 'blue', 'green', 'yellow', 'purple', 'orange'];
  const shapes = ['circle', 'square', 'triangle', 'star'];
  const out: string[] = [];
  for (let i = 0; i < N; i++) {
    out.push(`a ${colors[i % 6]} ${shapes[i % 4]} on the left`, `one small ${colors[(i + 2) % 6]} ${shapes[(i + 1) % 4]} above a ${shapes[(i + 3) % 4]}`);
  }
  return out;
}

function embedImages(px: Uint8Array, n: number): Float32Array {
  return tf.tidy(() => model.imageTower(tf.div(tf.tensor4d(Float32Array.from(px), [n, S, S, 3]), 255) as tf.Tensor4D).dataSync() as Float32Array);
}
function embedTexts(texts: string[]): Float32Array {
  return tf.tidy(() => model.textTower(tf.tensor2d(tokenizer.encodeBatch(texts), [texts.length, tokenizer.maxLen], 'int32')).dataSync() as Float32Array);
}

interface Foreign {
  url: string;
  server: Server;
  requests: number;
  close(): Promise<void>;
}

/**
 * The near-duplicate search service: POST /api/find {"q": "..."} or {"png": "<base64>"} with header x-token;
 * answers {"data": {"matches": [{"item": {"key": "..."}, "distance": d}]}}, best first (distance = 1 - cosine).
 */
async function startForeign(opts: { failAuth?: boolean; malformed?: boolean } = {}): Promise<Foreign> {
  const E = model.config.embedDim;
  const galleryImages = embedImages(images, N);
  const galleryTexts = embedTexts(captions);
  const state = { requests: 0 };
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', async () => {
      state.requests++;
      if (opts.failAuth || req.headers['x-token'] !== 'secret-token') {
        res.writeHead(401, { 'content-type': 'application/json' }).end('{"message":"bad token"}');
        return;
      }
      if (opts.malformed) {
        res.writeHead(200, { 'content-type': 'application/json' }).end('{"data": {"matches": [');
        return;
      }
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { q?: string; png?: string; n: number };
      let q: Float32Array;
      let gallery: Float32Array;
      let owner: (row: number) => number;
      if (body.q !== undefined) {
        q = embedTexts([body.q]);
        gallery = galleryTexts;
        owner = (row) => Math.floor(row / 2);
      } else {
        const { data } = await sharp(Buffer.from(body.png!, 'base64')).raw().toBuffer({ resolveWithObject: true });
        q = embedImages(new Uint8Array(data), 1);
        gallery = galleryImages;
        owner = (row) => row;
      }
      const best = new Map<number, number>();
      for (let r = 0; r < gallery.length / E; r++) {
        let dot = 0;
        for (let k = 0; k < E; k++) dot += q[k] * gallery[r * E + k];
        const item = owner(r);
        best.set(item, Math.max(best.get(item) ?? -Infinity, dot));
      }
      const matches = [...best].sort((a, b) => b[1] - a[1]).slice(0, body.n).map(([item, s]) => ({ item: { key: `doc-${item}` }, distance: 1 - s }));
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ data: { matches } }));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    server,
    get requests() {
      return state.requests;
    },
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

function foreignSpec(url: string, extra: Record<string, unknown> = {}) {
  return {
    name: 'near-duplicate service',
    request: { url: `${url}/api/find`, method: 'POST', headers: { 'x-token': '${FOREIGN_TOKEN}' }, timeoutMs: 5000 },
    text: { body: { q: '{{text}}', n: '{{topK}}' } },
    image: { encoding: 'json', body: { png: '{{imageBase64}}', n: '{{topK}}' } },
    response: { results: 'data.matches', id: 'item.key', score: 'distance', scoreOrder: 'lower-better' },
    limits: { ratePerSecond: 1000, concurrency: 4, retries: 1, backoffMs: 10, maxBackoffMs: 50, maxQueries: 100_000 },
    ...extra,
  };
}
const ENV = { FOREIGN_TOKEN: 'secret-token' };

/** the runner over a remote target, as `manyfold probe --target` runs it */
function probeRemote(o: Omit<RobustProbeOptions, 'source'> & { client: TargetClient; encoding: WireEncoding }) {
  const { client: c, encoding, ...rest } = o;
  return runRobustProbe({ source: new RemoteRankSource(c, encoding), ...rest });
}

function querySet(): ProbeQuerySet {
  return {
    size: S,
    images,
    origin: 'the test set',
    ids: Array.from({ length: N }, (_, i) => `doc-${i}`),
    labels: Array.from({ length: N }, (_, i) => `img${i}`),
    captions,
    captionToImage: captions.map((_, c) => Math.floor(c / 2)),
  };
}

beforeAll(async () => {
  await initBackend('wasm');
  root = mkdtempSync(join(tmpdir(), 'mf-remote-probe-'));
  captions = makeCaptions();
  tokenizer = buildTokenizer(captions, { maxLen: 32 });
  model = createDualEncoder(modelConfigFromPreset('tiny', tokenizer.vocabSize), 3);
  const rng = new Rng(9);
  images = new Uint8Array(N * S * S * 3);
  // smooth random images (blocks of 4 px), in pairs: image 2j+1 is image 2j with faint noise (+-4 levels), so every
  // item has a near-duplicate neighbour and a query need not move far to lose rank 1 (the black-box search's case)
  for (let i = 0; i < N; i += 2) {
    for (let by = 0; by < S / 4; by++)
      for (let bx = 0; bx < S / 4; bx++)
        for (let c = 0; c < 3; c++) {
          const v = Math.floor(rng.next() * 256);
          for (let y = 0; y < 4; y++) for (let x = 0; x < 4; x++) images[((i * S + by * 4 + y) * S + bx * 4 + x) * 3 + c] = v;
        }
    const per = S * S * 3;
    for (let k = 0; k < per; k++) images[(i + 1) * per + k] = Math.min(255, Math.max(0, images[i * per + k] + Math.floor(rng.next() * 9) - 4));
  }
});

afterAll(() => {
  model?.dispose();
  if (root) rmSync(root, { recursive: true, force: true });
});

describe('the wire', () => {
  it('PNG is lossless for 8-bit pixels; JPEG is not; quantisation rounds to the nearest level', async () => {
    const rgb = images.subarray(0, S * S * 3);
    expect(Buffer.from(await roundTrip(rgb, S, { format: 'png' })).equals(Buffer.from(rgb))).toBe(true);
    const { bytes, mime } = await encodeImage(rgb, S, { format: 'png' });
    expect(mime).toBe('image/png');
    const { data } = await sharp(bytes).raw().toBuffer({ resolveWithObject: true });
    expect(Buffer.from(data).equals(Buffer.from(rgb))).toBe(true);
    const jpeg = await roundTrip(rgb, S, { format: 'jpeg', quality: 85 });
    let diff = 0;
    for (let i = 0; i < rgb.length; i++) diff = Math.max(diff, Math.abs(jpeg[i] - rgb[i]));
    expect(diff).toBeGreaterThan(0);
    expect(Array.from(quantize(Float32Array.from([0, 0.5 / 255 - 1e-6, 0.5 / 255 + 1e-6, 1, 1.2, -0.1])))).toEqual([0, 0, 1, 255, 255, 0]);
  });
});

describe('a non-Manyfold search service over HTTP', () => {
  let foreign: Foreign;
  beforeAll(async () => {
    foreign = await startForeign();
  });
  afterAll(() => foreign?.close());

  it('clean recall is 100% and transfer + black-box attacks lower it (robust = worst case), queries counted', async () => {
    const spec = parseTargetSpec(foreignSpec(foreign.url), 'test target', ENV);
    const tc = new TargetClient(spec);
    const attempts: { stage: string; rank: number | null }[] = [];
    const report = await probeRemote({
      client: tc,
      queries: querySet(),
      attacks: [
        { name: 'transfer-pgd', eps: 16, steps: 10 },
        { name: 'transfer-text' },
        { name: 'blackbox-image', eps: 16, maxQueries: 100 },
      ],
      surrogate: { encoder: model, tokenizer, id: 'tiny-seed3' },
      encoding: { format: 'png' },
      topK: 5,
      resamples: 200,
      onAttempt: (a) => attempts.push(a),
    });
    console.log(renderRobustMarkdown(report));
    expect(report.partial).toBe(false);
    expect(report.clean.tr.recall.r1.mean).toBe(100);
    expect(report.clean.ir.recall.r1.mean).toBe(100);
    expect(report.clean.tr.n).toBe(N);
    expect(report.clean.ir.n).toBe(2 * N);
    const pgd = report.attacks.find((a) => a.name === 'transfer-pgd')!;
    const bb = report.attacks.find((a) => a.name === 'blackbox-image')!;
    const txt = report.attacks.find((a) => a.name === 'transfer-text')!;
    // the surrogate is the service's own encoder: the transfer attack is white-box in effect and must bite
    expect(pgd.tr!.recall.r1.mean).toBeLessThan(50);
    expect(pgd.attackQueries, 'transfer attacks never query the target while crafting').toBe(0);
    expect(bb.attackQueries).toBeGreaterThan(0);
    expect(bb.attackQueries).toBeLessThanOrEqual(100 * N);
    expect(bb.tr!.recall.r1.mean).toBeLessThan(75);
    expect(txt.ir!.recall.r1.mean).toBeLessThan(100);
    expect(report.robust.tr!.recall.r1.mean).toBeLessThanOrEqual(Math.min(pgd.tr!.recall.r1.mean, bb.tr!.recall.r1.mean));
    expect(report.robust.ir!.recall.r1.mean).toBeLessThanOrEqual(txt.ir!.recall.r1.mean);
    // one log line per evaluated query: clean (N + 2N) + pgd N + text 2N + black-box N
    expect(attempts.length).toBe(3 * N + N + 2 * N + N);
    expect(report.sourceStats!.requests).toBe(foreign.requests);
    expect(report.sourceStats!.latencyMs.count).toBeGreaterThan(0);
    const bars = checkBars(report, parseFailBelow('clean.tr.r1=99,robust.tr.r1=90'));
    expect(bars).toHaveLength(1);
    expect(bars[0]).toMatch(/^robust\.tr\.r1 = /);
  });

  it('manyfold probe --target: report files, the JSONL log, and exit 3 below a bar (secrets redacted)', async () => {
    const qdir = join(root, 'queries');
    const rows: string[] = [];
    for (let i = 0; i < 4; i++) {
      const file = join(root, `q${i}.png`);
      await sharp(Buffer.from(images.subarray(i * S * S * 3, (i + 1) * S * S * 3)), { raw: { width: S, height: S, channels: 3 } }).png().toFile(file);
      rows.push(JSON.stringify({ image: file, captions: captions.slice(2 * i, 2 * i + 2), targetId: `doc-${i}` }));
    }
    const queries = join(root, 'queries.jsonl');
    writeFileSync(queries, `${rows.join('\n')}\n`);
    const target = join(root, 'target.json');
    writeFileSync(target, JSON.stringify(foreignSpec(foreign.url)));
    const surrogate = join(root, 'surrogate');
    await saveArtifact(surrogate, { model, tokenizer, training: { seed: 3 } });
    const out = join(qdir, 'report.json');
    const jsonl = join(qdir, 'attempts.jsonl');
    const args = ['bin/manyfold.js', 'probe', '--target', target, '--queries', queries, '--surrogate', surrogate, '--attacks', 'transfer-pgd', '--eps', '16', '--steps', '5', '--top-k', '5', '--resamples', '100', '--json', out, '--jsonl', jsonl, '--fail-below', 'robust.tr.r1=100', '--quiet'];
    const r = await exec(process.execPath, args, { env: { ...process.env, FOREIGN_TOKEN: 'secret-token' } }).then(
      (x) => ({ code: 0, ...x }),
      (e: { code: number; stdout: string; stderr: string }) => e,
    );
    expect(r.code, r.stderr).toBe(3);
    expect(r.stderr).toMatch(/below the bar/);
    expect(r.stdout).toMatch(/# Robust recall of near-duplicate service/);
    const rep = JSON.parse(readFileSync(out, 'utf8'));
    expect(rep.clean.tr.recall.r1.mean).toBe(100);
    expect(JSON.stringify(rep.targetSpec)).not.toContain('secret-token');
    expect(readFileSync(jsonl, 'utf8').trim().split('\n')).toHaveLength(4 + 8 + 4);
  }, 120_000);
});

describe('misbehaving targets end in a clear partial report, not a crash', () => {
  it('401: partial, the error names it, and the CLI exits 4', async () => {
    const bad = await startForeign({ failAuth: true });
    try {
      const tc = new TargetClient(parseTargetSpec(foreignSpec(bad.url), 'test target', ENV));
      const report = await probeRemote({ client: tc, queries: querySet(), attacks: [], encoding: { format: 'png' }, topK: 5, resamples: 50 });
      expect(report.partial).toBe(true);
      expect(report.error).toMatch(/auth/);
      expect(bad.requests, 'no retries after a 401').toBe(1);
      expect(checkBars(report, [])).toEqual([expect.stringMatching(/partial/)]);

      const file = join(root, 'auth-q0.png');
      await sharp(Buffer.from(images.subarray(0, S * S * 3)), { raw: { width: S, height: S, channels: 3 } }).png().toFile(file);
      const queries = join(root, 'auth-queries.jsonl');
      writeFileSync(queries, `${JSON.stringify({ image: file, captions: [captions[0]], targetId: 'doc-0' })}\n`);
      const target = join(root, 'auth-target.json');
      writeFileSync(target, JSON.stringify(foreignSpec(bad.url)));
      const r = await exec(process.execPath, ['bin/manyfold.js', 'probe', '--target', target, '--queries', queries, '--image-size', String(S), '--attacks', 'blackbox-text', '--quiet'], {
        env: { ...process.env, FOREIGN_TOKEN: 'secret-token' },
      }).then(
        (x) => ({ code: 0, ...x }),
        (e: { code: number; stdout: string; stderr: string }) => e,
      );
      expect(r.code, r.stderr).toBe(4);
      expect(r.stderr).toMatch(/partial report: auth/);
      expect(r.stdout).toMatch(/PARTIAL/);
    } finally {
      await bad.close();
    }
  }, 60_000);

  it('malformed JSON: every query counted as failed after retries, no recall invented', async () => {
    const bad = await startForeign({ malformed: true });
    try {
      const tc = new TargetClient(parseTargetSpec(foreignSpec(bad.url), 'test target', ENV));
      const q = querySet();
      const report = await probeRemote({ client: tc, queries: { ...q, ids: q.ids.slice(0, 2), labels: q.labels!.slice(0, 2), images: images.subarray(0, 2 * S * S * 3), captions: q.captions.slice(0, 4), captionToImage: q.captionToImage.slice(0, 4) }, attacks: [], encoding: { format: 'png' }, topK: 5, resamples: 50 });
      expect(report.clean.tr.n).toBe(0);
      expect(report.clean.tr.failed).toBe(2);
      expect(report.clean.ir.failed).toBe(4);
      expect(report.sourceStats!.failures!.malformed).toBeGreaterThan(0);
      expect(checkBars(report, parseFailBelow('clean.tr.r1=1'))).toEqual([expect.stringMatching(/no query answered/)]);
    } finally {
      await bad.close();
    }
  });
});

describe('a Manyfold API over HTTP as a foreign target', () => {
  it('its items are found by id through target.json; clean ranks equal what its own model gives', async () => {
    const [m] = await makeModels(join(root, 'mf'), [21]);
    const srv = await start({ modelDir: m.dir, dataDir: join(root, 'mf-data') });
    try {
      const call = client(srv.url);
      const items = await Promise.all(
        Array.from({ length: 6 }, async (_, i) => ({
          id: `it${i}`,
          image: Buffer.from((await encodeImage(images.subarray(i * S * S * 3, (i + 1) * S * S * 3), S, { format: 'png' })).bytes).toString('base64'),
          captions: [CAPTIONS[i]],
        })),
      );
      expect((await call('POST', '/v1/items', { key: KEYS.write, json: { items } })).status).toBe(200);
      const spec = manyfoldTarget(srv.url, { name: 'manyfold', key: KEYS.search });
      const q: ProbeQuerySet = { size: S, origin: 'six items', images: images.subarray(0, 6 * S * S * 3), ids: items.map((x) => x.id), labels: items.map((x) => x.id), captions: CAPTIONS.slice(0, 6), captionToImage: [0, 1, 2, 3, 4, 5] };
      const report = await probeRemote({ client: new TargetClient(spec), queries: q, attacks: [], encoding: { format: 'png' }, topK: 6, ks: [1, 5], resamples: 50 });
      expect(report.partial).toBe(false);
      expect(report.clean.tr.n).toBe(6);
      expect(report.clean.ir.n).toBe(6);
      // the same ranking computed from the server's own encoder (one caption per item: the item ranking is the caption ranking)
      const enc = srv.api.service.active.encoder;
      const img = await enc.embedImagesMatrixAsync(images.subarray(0, 6 * S * S * 3), 6);
      const txt = await enc.embedTextsMatrixAsync(CAPTIONS.slice(0, 6));
      const E = enc.dim;
      let top1 = 0;
      for (let i = 0; i < 6; i++) {
        const sims = Array.from({ length: 6 }, (_, t) => {
          let d = 0;
          for (let k = 0; k < E; k++) d += img[i * E + k] * txt[t * E + k];
          return d;
        });
        if (sims.indexOf(Math.max(...sims)) === i) top1++;
      }
      expect(report.clean.tr.recall.r1.mean).toBeCloseTo((100 * top1) / 6, 6);
    } finally {
      await srv.close();
    }
  });
});
