/**
 * API test fixtures: tiny untrained model artifacts (enough for API mechanics), real servers on 127.0.0.1 with
 * an ephemeral port and a LanceDB index in a temp directory, and image bytes (real PNGs, and a PNG whose
 * header declares 50000 x 50000 pixels).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { pino } from 'pino';
import { crc32 } from '../../src/data/crc32.js';
import { initBackend } from '../../src/engine/backend.js';
import { createDualEncoder, modelConfigFromPreset } from '../../src/model/dual-encoder.js';
import { saveArtifact } from '../../src/model/artifact.js';
import { buildTokenizer } from '../../src/model/tokenizer.js';
import { startServer, type RunningServer, type StartServerOptions } from '../../src/node/server.js';
import { SAMPLE_CAPTIONS } from '../fixtures/captions.js';

export const CAPTIONS = [...SAMPLE_CAPTIONS];

export const KEYS = {
  admin: 'admin-key-0123456789',
  search: 'search-key-0123456789',
  write: 'write-key-0123456789',
  probe: 'probe-key-0123456789',
  both: 'both-key-0123456789',
};
export const KEY_SPEC = `${KEYS.admin}=admin,${KEYS.search}=search,${KEYS.write}=write,${KEYS.probe}=probe,${KEYS.both}=search+write`;

export function tmp(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `manyfold-${prefix}-`));
}

export function rmrf(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

/** Saves untrained tiny models (one per seed) under root/<seed>/; returns [dir, id] pairs. */
export async function makeModels(root: string, seeds: number[]): Promise<{ dir: string; id: string }[]> {
  await initBackend('wasm');
  const tok = buildTokenizer(CAPTIONS, { maxLen: 32 });
  const out: { dir: string; id: string }[] = [];
  for (const seed of seeds) {
    const model = createDualEncoder(modelConfigFromPreset('tiny', tok.vocabSize), seed);
    const dir = join(root, `m${seed}`);
    const m = await saveArtifact(dir, { model, tokenizer: tok, training: { seed, method: 'untrained (test)' } });
    model.dispose();
    out.push({ dir, id: m.id });
  }
  return out;
}

export async function start(opts: Partial<StartServerOptions> & { modelDir: string; dataDir: string }): Promise<RunningServer> {
  return startServer({
    port: 0,
    host: '127.0.0.1',
    env: { MANYFOLD_API_KEYS: KEY_SPEC },
    logger: pino({ level: process.env.TEST_LOG ? 'debug' : 'silent' }),
    ...opts,
    overrides: { backend: 'wasm', ...(opts.overrides ?? {}) },
  });
}

export interface Res<T = any> {
  status: number;
  body: T;
  headers: Headers;
  text: string;
}

export function client(url: string) {
  return async function call<T = any>(method: string, path: string, opts: { key?: string; json?: unknown; body?: BodyInit; headers?: Record<string, string> } = {}): Promise<Res<T>> {
    const headers: Record<string, string> = { ...(opts.headers ?? {}) };
    if (opts.key) headers.authorization = `Bearer ${opts.key}`;
    let body = opts.body;
    if (opts.json !== undefined) {
      headers['content-type'] ??= 'application/json';
      body = JSON.stringify(opts.json);
    }
    const r = await fetch(`${url}${path}`, { method, headers, body });
    const text = await r.text();
    let parsed: any = undefined;
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    return { status: r.status, body: parsed, headers: r.headers, text };
  };
}

/** a w x h PNG of one colour with a little pattern, base64 */
export async function png(w: number, h: number, rgb: [number, number, number], seed = 0): Promise<Buffer> {
  const px = Buffer.alloc(w * h * 3);
  for (let i = 0; i < w * h; i++) {
    const stripe = ((i % w) + seed) % 7 < 3 ? 40 : 0;
    px[i * 3] = Math.min(255, rgb[0] + stripe);
    px[i * 3 + 1] = rgb[1];
    px[i * 3 + 2] = Math.max(0, rgb[2] - stripe);
  }
  return sharp(px, { raw: { width: w, height: h, channels: 3 } }).png().toBuffer();
}

function chunk(type: string, data: Buffer): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const td = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(td));
  return Buffer.concat([len, td, crc]);
}

/** A tiny file that is a PNG whose header declares w x h pixels (a decompression bomb's header). */
export function bombPng(w = 50_000, h = 50_000): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // RGB
  const idat = Buffer.from([0x78, 0x9c, 0x63, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01]);
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), chunk('IDAT', idat), chunk('IEND', Buffer.alloc(0))]);
}

export async function waitFor<T>(fn: () => Promise<T | undefined | false>, timeoutMs = 60_000, everyMs = 50): Promise<T> {
  const t0 = Date.now();
  for (;;) {
    const v = await fn();
    if (v) return v as T;
    if (Date.now() - t0 > timeoutMs) throw new Error('waitFor: timed out');
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
