/**
 * `manyfold serve` as a real process, started as users start it (bin/manyfold.js): a generated admin key printed once (only its hash stored), bearer auth
 * with it, graceful shutdown on SIGTERM (an in-flight request still completes; exit code 0), and the same key
 * working after a restart without being printed again.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CAPTIONS, client, makeModels, png, rmrf, tmp } from './helpers.js';

let root: string;
let modelDir: string;

beforeAll(async () => {
  root = tmp('serve');
  modelDir = (await makeModels(`${root}/models`, [7]))[0].dir;
});
afterAll(() => rmrf(root));

function postNoKeepAlive(base: string, path: string, key: string, json: unknown): Promise<{ status: number; body: any }> {
  return new Promise((ok, fail) => {
    const u = new URL(path, base);
    const data = JSON.stringify(json);
    const req = http.request({ host: u.hostname, port: u.port, path: u.pathname, method: 'POST', agent: false, headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) } }, (res) => {
      let b = '';
      res.on('data', (d) => (b += d));
      res.on('end', () => ok({ status: res.statusCode ?? 0, body: JSON.parse(b) }));
    });
    req.on('error', fail);
    req.end(data);
  });
}

function serve(): { proc: ChildProcess; ready: Promise<{ url: string; stderr: () => string }> } {
  const env: NodeJS.ProcessEnv = { ...process.env, MANYFOLD_BACKEND: 'wasm', MANYFOLD_LOG_LEVEL: 'warn' };
  delete env.MANYFOLD_API_KEYS;
  // the process a user starts: the `manyfold` bin itself (one process: the signal reaches the server, not a wrapper)
  const proc = spawn(process.execPath, ['bin/manyfold.js', 'serve', '--model', modelDir, '--data', `${root}/data`, '--port', '0'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  proc.stderr!.on('data', (d) => (err += d));
  const ready = new Promise<{ url: string; stderr: () => string }>((ok, fail) => {
    proc.stdout!.on('data', (d) => {
      out += d;
      const m = /manyfold API on (http:\/\/\S+)/.exec(out);
      if (m) ok({ url: m[1], stderr: () => err });
    });
    proc.once('exit', (c) => fail(new Error(`serve exited ${c}: ${err}`)));
  });
  return { proc, ready };
}

describe('manyfold serve', () => {
  it('generated key, graceful SIGTERM, restart', async () => {
    const a = serve();
    const { url, stderr } = await a.ready;
    const key = /\n\s+(mf_[A-Za-z0-9_-]+)/.exec(stderr())?.[1];
    expect(key).toBeTruthy();
    const stored = readFileSync(`${root}/data/keys.json`, 'utf8');
    expect(stored).not.toContain(key!);
    expect(stored).toMatch(/"sha256": "[0-9a-f]{64}"/);
    const call = client(url);
    const img = (await png(16, 16, [10, 200, 10])).toString('base64');
    expect((await call('POST', '/v1/items', { key, json: { items: [{ id: 'g', image: img, captions: [CAPTIONS[1]] }] } })).status).toBe(200);
    expect((await call('POST', '/v1/search', { key: 'wrong-key-123456', json: { text: 'x' } })).status).toBe(401);
    // SIGTERM while requests are in flight: they complete, then the process exits 0
    // (fresh connections: a request that a client queues on an idle keep-alive connection is not in flight)
    let sigAt = Infinity;
    const inflight = Promise.allSettled(
      Array.from({ length: 8 }, () => postNoKeepAlive(url, '/v1/search', key!, { image: img, topK: 1 }).then((r) => ({ ...r, at: performance.now() }))),
    );
    // (requests still waiting client-side for a connection are not in flight: give them time to arrive)
    await new Promise((r) => setTimeout(r, 40));
    sigAt = performance.now();
    a.proc.kill('SIGTERM');
    const [settled, code] = await Promise.all([inflight, new Promise<number | null>((r) => a.proc.once('exit', r))]);
    expect(code).toBe(0);
    // nothing left behind holding the port (with a launcher that spawned the CLI as a child, the server kept answering)
    await expect(fetch(`${url}/health`)).rejects.toThrow();
    const ok = settled.filter((s) => s.status === 'fulfilled').map((s) => (s as PromiseFulfilledResult<{ status: number; body: any; at: number }>).value);
    // every request the server had accepted completed correctly, some of them after the signal; a request still
    // in the kernel's accept queue when the listener closed may be reset (it never reached the server)
    expect(ok.every((r) => r.status === 200 && r.body.results[0].id === 'g')).toBe(true);
    expect(ok.some((r) => r.at > sigAt)).toBe(true);
    for (const s of settled) if (s.status === 'rejected') expect(String((s.reason as Error).message)).toMatch(/ECONNRESET|ECONNREFUSED|socket hang up/);
    expect(stderr().split(key!).length - 1).toBe(1); // shown once, in the banner; never in logs

    const b = serve();
    const rb = await b.ready;
    try {
      expect(rb.stderr()).not.toMatch(/mf_[A-Za-z0-9_-]{20,}/);
      const s = await client(rb.url)('POST', '/v1/search', { key, json: { text: CAPTIONS[1], target: 'texts', topK: 1 } });
      expect(s.body.results[0].id).toBe('g');
    } finally {
      b.proc.kill('SIGTERM');
      await new Promise((r) => b.proc.once('exit', r));
    }
  });
});
