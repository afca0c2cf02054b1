/**
 * TargetClient and target.json against real HTTP servers on 127.0.0.1 (node:http, port 0): what reaches the
 * server, how responses become hits, and how the client behaves when the target misbehaves.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  TargetClient,
  TargetError,
  TargetSpecError,
  loadTargetSpec,
  parseTargetSpec,
  redactedSpec,
  type TargetAttempt,
  type TargetErrorKind,
  type TargetQuery,
} from '../../src/probe/target/index.js';

interface Received {
  method: string;
  url: URL;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

type Handler = (req: Received, res: http.ServerResponse, index: number) => void | Promise<void>;

const servers: http.Server[] = [];
const tempDirs: string[] = [];

afterEach(async () => {
  for (const s of servers.splice(0)) {
    s.closeAllConnections(); // servers that never answer keep sockets open
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }
  for (const d of tempDirs.splice(0)) await rm(d, { recursive: true, force: true });
});

async function startServer(handle: Handler) {
  const received: Received[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const r: Received = { method: req.method ?? '', url: new URL(req.url ?? '/', 'http://127.0.0.1'), headers: req.headers, body: Buffer.concat(chunks) };
      received.push(r);
      void handle(r, res, received.length - 1);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  servers.push(server);
  const port = (server.address() as AddressInfo).port;
  return { base: `http://127.0.0.1:${port}`, port, received, server };
}

function sendJson(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(typeof body === 'string' ? body : JSON.stringify(body));
}

const HITS = { hits: [{ id: 'a', score: 0.9 }, { id: 'b', score: 0.4 }] };

/** a parsed spec: a JSON text target at `${base}/search` answering { hits: [{ id, score }] }, plus `extra` */
function specFor(base: string, extra: Record<string, unknown> = {}) {
  return parseTargetSpec(
    {
      name: 'test target',
      request: { url: `${base}/search` },
      text: { body: { query: '{{text}}', limit: '{{topK}}' } },
      response: { results: 'hits', id: 'id', score: 'score' },
      ...extra,
    },
    'test',
    {},
  );
}

/** sleep that returns at once and remembers what it was asked to wait */
function recordingSleep() {
  const waits: number[] = [];
  return { waits, sleep: async (ms: number) => void waits.push(ms) };
}

async function targetError(p: Promise<unknown>): Promise<TargetError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof TargetError) return e;
    throw e;
  }
  throw new Error('expected a TargetError, the search succeeded');
}

const text = (t: string): TargetQuery => ({ kind: 'text', text: t });
const ALL_BYTES = Uint8Array.from({ length: 256 }, (_, i) => i);

describe('requests reach the server as the templates say', () => {
  it('JSON text: placeholders replaced, {{topK}} as a number, in-string placeholders as text, headers sent', async () => {
    const srv = await startServer((_, res) => sendJson(res, 200, { data: { hits: [{ doc: { id: 17 }, similarity: 0.9 }, { doc: { id: 'b' }, similarity: 0.5 }] } }));
    const spec = specFor(srv.base, {
      request: { url: `${srv.base}/search`, headers: { authorization: 'Bearer t0k3n', 'x-tenant': 'qa' } },
      text: { body: { query: '{{text}}', limit: '{{topK}}', options: { note: 'top {{topK}} for {{text}}', tags: ['{{text}}', 1, null] } } },
      response: { results: 'data.hits', id: 'doc.id', score: 'similarity' },
    });
    const hits = await new TargetClient(spec).search(text('a "red" car'), 5);
    expect(hits).toStrictEqual([
      { id: '17', score: 0.9 },
      { id: 'b', score: 0.5 },
    ]);
    expect(srv.received).toHaveLength(1);
    const got = srv.received[0];
    expect(got.method).toBe('POST');
    expect(got.url.pathname).toBe('/search');
    expect(got.headers['content-type']).toBe('application/json');
    expect(got.headers.authorization).toBe('Bearer t0k3n');
    expect(got.headers['x-tenant']).toBe('qa');
    expect(JSON.parse(got.body.toString('utf8'))).toStrictEqual({
      query: 'a "red" car',
      limit: 5,
      options: { note: 'top 5 for a "red" car', tags: ['a "red" car', 1, null] },
    });
  });

  it('JSON image: bytes survive the base64 round trip, also inside a data URL', async () => {
    const srv = await startServer((_, res) => sendJson(res, 200, HITS));
    const spec = specFor(srv.base, {
      image: { encoding: 'json', body: { image: '{{imageBase64}}', dataUrl: 'data:{{imageMime}};base64,{{imageBase64}}', mime: '{{imageMime}}', limit: '{{topK}}' } },
    });
    const hits = await new TargetClient(spec).search({ kind: 'image', bytes: ALL_BYTES, mime: 'image/png' }, 7);
    expect(hits.map((h) => h.id)).toEqual(['a', 'b']);
    const body = JSON.parse(srv.received[0].body.toString('utf8'));
    expect(new Uint8Array(Buffer.from(body.image, 'base64'))).toEqual(ALL_BYTES);
    expect(body.dataUrl).toBe(`data:image/png;base64,${body.image}`);
    expect(body.mime).toBe('image/png');
    expect(body.limit).toBe(7);
  });

  it('multipart image: the file part carries the bytes and type, fields are filled, parsed by Request.formData()', async () => {
    const srv = await startServer((_, res) => sendJson(res, 200, HITS));
    const spec = specFor(srv.base, {
      request: { url: `${srv.base}/search`, headers: { authorization: 'Bearer x' } },
      image: { encoding: 'multipart', field: 'file', fields: { target: 'texts', topK: '{{topK}}' } },
    });
    const bytes = ALL_BYTES.slice().reverse();
    await new TargetClient(spec).search({ kind: 'image', bytes, mime: 'image/jpeg' }, 3);
    const got = srv.received[0];
    expect(got.headers['content-type']).toMatch(/^multipart\/form-data; boundary=/);
    const form = await new Request('http://127.0.0.1/', { method: 'POST', headers: { 'content-type': got.headers['content-type']! }, body: new Uint8Array(got.body) }).formData();
    const file = form.get('file');
    expect(file).toBeInstanceOf(File);
    expect((file as File).type).toBe('image/jpeg');
    expect((file as File).name).toBe('query.jpg');
    expect(new Uint8Array(await (file as File).arrayBuffer())).toEqual(bytes);
    expect(form.get('target')).toBe('texts');
    expect(form.get('topK')).toBe('3');
    expect([...form.keys()].sort()).toEqual(['file', 'target', 'topK']);
  });

  it('binary image: the bytes are the body, Content-Type is the image type, query parameters filled', async () => {
    const srv = await startServer((_, res) => sendJson(res, 200, HITS));
    const spec = specFor(srv.base, { image: { encoding: 'binary', url: `${srv.base}/by-image`, method: 'PUT', query: { k: '{{topK}}' } } });
    await new TargetClient(spec).search({ kind: 'image', bytes: ALL_BYTES, mime: 'image/png' }, 3);
    const got = srv.received[0];
    expect(got.method).toBe('PUT');
    expect(got.url.pathname).toBe('/by-image');
    expect(got.url.searchParams.get('k')).toBe('3');
    expect(got.headers['content-type']).toBe('image/png');
    expect(new Uint8Array(got.body)).toEqual(ALL_BYTES);
  });

  it('GET: the text is URL-encoded into the query, existing parameters kept, no body; a bare-array response', async () => {
    const srv = await startServer((_, res) => sendJson(res, 200, [{ id: 1 }, { id: 2 }, { id: 3 }]));
    const spec = specFor(srv.base, {
      request: { url: `${srv.base}/search?index=main`, method: 'GET' },
      text: { query: { q: '{{text}}', n: '{{topK}}', exact: false } },
      response: { results: '$', id: 'id' },
    });
    const odd = 'a&b=c ü/?#+%20';
    const hits = await new TargetClient(spec).search(text(odd), 2);
    const got = srv.received[0];
    expect(got.method).toBe('GET');
    expect(got.body.length).toBe(0);
    expect(got.url.searchParams.get('q')).toBe(odd);
    expect(got.url.searchParams.get('n')).toBe('2');
    expect(got.url.searchParams.get('exact')).toBe('false');
    expect(got.url.searchParams.get('index')).toBe('main');
    // rank-only target: no score key at all, and truncated to topK
    expect(hits).toStrictEqual([{ id: '1' }, { id: '2' }]);
  });

  it('per-modality url and headers override the request defaults', async () => {
    const srv = await startServer((_, res) => sendJson(res, 200, HITS));
    const spec = specFor(srv.base, {
      request: { url: `${srv.base}/search`, headers: { authorization: 'Bearer shared', 'x-mode': 'default' } },
      image: { encoding: 'json', url: `${srv.base}/image-search`, headers: { 'x-mode': 'image' }, body: { b64: '{{imageBase64}}' } },
    });
    const client = new TargetClient(spec);
    await client.search(text('t'), 1);
    await client.search({ kind: 'image', bytes: ALL_BYTES, mime: 'image/png' }, 1);
    expect(srv.received.map((r) => [r.url.pathname, r.headers['x-mode'], r.headers.authorization])).toEqual([
      ['/search', 'default', 'Bearer shared'],
      ['/image-search', 'image', 'Bearer shared'],
    ]);
  });
});

describe('responses become hits', () => {
  it('nested paths with array indices, numeric ids stringified, bare ids with "$"', async () => {
    const srv = await startServer((req, res) =>
      req.url.pathname === '/ids'
        ? sendJson(res, 200, { result: { ids: [42, 'x7'] } })
        : sendJson(res, 200, { out: [{ refs: [{ key: 5 }, { key: 6 }], m: { s: [0.1, 0.7] } }, { refs: [{ key: 'k2' }], m: { s: [0.2, 0.3] } }] }),
    );
    const nested = specFor(srv.base, { response: { results: 'out', id: 'refs.0.key', score: '$.m.s.1' } });
    expect(await new TargetClient(nested).search(text('q'), 10)).toStrictEqual([
      { id: '5', score: 0.7 },
      { id: 'k2', score: 0.3 },
    ]);
    const bare = specFor(srv.base, { request: { url: `${srv.base}/ids` }, response: { results: 'result.ids', id: '$' } });
    expect(await new TargetClient(bare).search(text('q'), 10)).toStrictEqual([{ id: '42' }, { id: 'x7' }]);
  });

  it('lower-better scores (distances) are negated so higher is better; order kept; truncated to topK', async () => {
    const srv = await startServer((_, res) => sendJson(res, 200, { matches: [{ id: 'n', distance: 0 }, { id: 'm', distance: 0.25 }, { id: 'f', distance: 1.5 }] }));
    const spec = specFor(srv.base, { response: { results: 'matches', id: 'id', score: 'distance', scoreOrder: 'lower-better' } });
    expect(await new TargetClient(spec).search(text('q'), 2)).toStrictEqual([
      { id: 'n', score: 0 },
      { id: 'm', score: -0.25 },
    ]);
  });

  it('a malformed hit below topK does not fail the query', async () => {
    const srv = await startServer((_, res) => sendJson(res, 200, { hits: [{ id: 'a', score: 1 }, { score: 0.5 }] }));
    expect(await new TargetClient(specFor(srv.base)).search(text('q'), 1)).toStrictEqual([{ id: 'a', score: 1 }]);
  });

  const malformedCases: [string, unknown, RegExp][] = [
    ['not JSON', '<html>oops</html>', /not JSON: "<html>oops<\/html>"/],
    ['results not an array', { hits: { id: 'a' } }, /response\.results "hits" is an object, not an array/],
    ['results path missing', { data: [] }, /response\.results "hits" not found: no "hits"/],
    ['an id missing', { hits: [{ id: 'a', score: 1 }, { score: 0.5 }] }, /hits\[1\]: response\.id "id" not found/],
    ['an id that is an object', { hits: [{ id: { v: 1 }, score: 1 }] }, /hits\[0\]: response\.id "id" is an object/],
    ['an empty id', { hits: [{ id: '', score: 1 }] }, /hits\[0\]: response\.id "id" is the string ""/],
    ['a score as a string', { hits: [{ id: 'a', score: '0.9' }] }, /hits\[0\]: response\.score "score" is the string "0.9", not a finite number/],
    ['a null score', { hits: [{ id: 'a', score: null }] }, /hits\[0\]: response\.score "score" is null/],
  ];
  for (const [what, body, message] of malformedCases) {
    it(`malformed response (${what}): TargetError 'malformed' naming the path and the request, not retried`, async () => {
      const srv = await startServer((_, res) => sendJson(res, 200, body));
      const client = new TargetClient(specFor(srv.base), { sleep: recordingSleep().sleep });
      const err = await targetError(client.search(text('q'), 5));
      expect(err.kind).toBe('malformed');
      expect(err.fatal).toBe(false);
      expect(err.message).toMatch(message);
      expect(err.message).toContain(`test target: POST ${srv.base}/search (text query)`);
      expect(srv.received).toHaveLength(1);
      expect(client.stats().failures).toEqual({ malformed: 1 });
    });
  }
});

describe('target.json: loading, ${ENV} interpolation, validation', () => {
  async function writeTarget(json: unknown): Promise<string> {
    const dir = await mkdtemp(join(tmpdir(), 'manyfold-target-'));
    tempDirs.push(dir);
    const file = join(dir, 'target.json');
    await writeFile(file, typeof json === 'string' ? json : JSON.stringify(json));
    return file;
  }

  const fileSpec = {
    name: 'env target',
    request: { url: 'http://127.0.0.1:${TARGET_PORT}/search', headers: { authorization: 'Bearer ${SEARCH_TOKEN}' } },
    text: { body: { query: '{{text}}', note: '${SEARCH_TOKEN}' } },
    response: { results: 'hits', id: 'id' },
  };

  it('fills url and header values from the environment, never bodies; redactedSpec hides them', async () => {
    const srv = await startServer((_, res) => sendJson(res, 200, HITS));
    const file = await writeTarget(fileSpec);
    const spec = await loadTargetSpec(file, { TARGET_PORT: String(srv.port), SEARCH_TOKEN: 's3cret' });
    expect(spec.request.url).toBe(`${srv.base}/search`);
    expect(spec.request.headers.authorization).toBe('Bearer s3cret');
    await new TargetClient(spec).search(text('q'), 2);
    expect(srv.received[0].headers.authorization).toBe('Bearer s3cret');
    expect(JSON.parse(srv.received[0].body.toString('utf8')).note).toBe('${SEARCH_TOKEN}');

    const shown = redactedSpec(spec);
    expect(shown.request.headers).toEqual({ authorization: '[redacted]' });
    expect(shown.request.url).toBe('http://127.0.0.1:${TARGET_PORT}/search');
    expect(JSON.stringify(shown)).not.toContain('s3cret');
    expect(spec.request.headers.authorization).toBe('Bearer s3cret'); // the original is untouched
  });

  it('a missing or empty variable is an error naming the file, the field and the variable', async () => {
    const file = await writeTarget(fileSpec);
    for (const env of [{ TARGET_PORT: '1' }, { TARGET_PORT: '1', SEARCH_TOKEN: '' }]) {
      const err = await loadTargetSpec(file, env).then(
        () => null,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(TargetSpecError);
      expect((err as Error).message).toContain(file);
      expect((err as Error).message).toContain('request.headers.authorization');
      expect((err as Error).message).toContain('SEARCH_TOKEN');
    }
    await expect(loadTargetSpec(file, { SEARCH_TOKEN: 'x' })).rejects.toThrow(/request\.url: environment variable TARGET_PORT is not set/);
  });

  it('unreadable files and invalid JSON name the file', async () => {
    const missing = join(tmpdir(), 'manyfold-no-such-dir', 'target.json');
    await expect(loadTargetSpec(missing, {})).rejects.toThrow(`${missing}: cannot read the target spec`);
    const broken = await writeTarget('{ "name": ');
    await expect(loadTargetSpec(broken, {})).rejects.toThrow(`${broken}: not valid JSON`);
  });

  it('defaults: POST, 10 s timeout, one request in flight, 3 retries, no rate limit, no budget', () => {
    const spec = parseTargetSpec({ name: 'n', request: { url: 'https://example.com/s' }, text: { body: { q: '{{text}}' } }, response: { results: 'r', id: 'id' } }, 'target.json', {});
    expect(spec.request).toEqual({ url: 'https://example.com/s', method: 'POST', headers: {}, timeoutMs: 10_000 });
    expect(spec.limits).toEqual({ burst: 1, concurrency: 1, retries: 3, backoffMs: 250, maxBackoffMs: 8_000 });
    expect(spec.response.scoreOrder).toBe('higher-better');
    expect(new TargetClient(spec).stats().budgetLeft).toBeNull();
  });

  const valid = {
    name: 'n',
    request: { url: 'https://example.com/s' },
    text: { body: { q: '{{text}}' } },
    response: { results: 'r', id: 'id' },
  };
  const invalidCases: [string, Record<string, unknown>, string][] = [
    ['concurrency 0', { limits: { concurrency: 0 } }, 'limits.concurrency'],
    ['an unknown key (strict objects)', { limits: { ratePerSec: 5 } }, 'ratePerSec'],
    ['a negative rate', { limits: { ratePerSecond: -1 } }, 'limits.ratePerSecond'],
    ['maxBackoffMs below backoffMs', { limits: { backoffMs: 500, maxBackoffMs: 100 } }, 'limits.maxBackoffMs'],
    ['no modality', { text: undefined }, 'give at least one of "text" or "image"'],
    ['a GET with a body', { request: { url: 'https://example.com/s', method: 'GET' } }, 'text.body: a GET request has no body'],
    ['a POST without a body', { text: { query: { q: '{{text}}' } } }, 'text.body: a POST request needs a body'],
    ['an unknown placeholder', { text: { body: { q: '{{text}}', k: '{{topk}}' } } }, 'text.body.k: unknown placeholder {{topk}}'],
    ['a text template without {{text}}', { text: { body: { q: 'fixed' } } }, 'text.body: the text template never uses {{text}}'],
    ['{{text}} in an image template', { image: { encoding: 'json', body: { img: '{{text}}' } } }, 'image.body.img: unknown placeholder {{text}}'],
    ['an image template without {{imageBase64}}', { image: { encoding: 'json', body: { img: 'fixed' } } }, 'image.body: the JSON image template never uses {{imageBase64}}'],
    ['an image encoding missing', { image: { body: { img: '{{imageBase64}}' } } }, 'image.encoding'],
    ['images over GET', { request: { url: 'https://example.com/s', method: 'GET' }, text: { query: { q: '{{text}}' } }, image: { encoding: 'binary' } }, 'image.method'],
    ['Content-Type with multipart', { request: { url: 'https://example.com/s', headers: { 'Content-Type': 'application/json' } }, image: { encoding: 'multipart' } }, 'request.headers: no Content-Type header'],
    ['a bad response path', { response: { results: 'data..hits', id: 'id' } }, 'response.results'],
    ['a non-http URL', { request: { url: 'ftp://example.com/s' } }, 'request.url: only http and https'],
    ['an unparseable URL', { request: { url: 'example.com/s' } }, 'request.url: not a valid URL'],
    ['a bad env reference', { request: { url: 'https://example.com/${1X}' } }, 'request.url: ${1X} is not a valid environment variable reference'],
  ];
  for (const [what, patch, field] of invalidCases) {
    it(`rejects ${what}, naming the field`, () => {
      expect(() => parseTargetSpec({ ...valid, ...patch }, 'target.json', {})).toThrow(TargetSpecError);
      expect(() => parseTargetSpec({ ...valid, ...patch }, 'target.json', {})).toThrow(field);
      expect(() => parseTargetSpec({ ...valid, ...patch }, 'target.json', {})).toThrow(/^target\.json: /);
    });
  }
});

describe('misbehaving targets', () => {
  for (const status of [401, 403]) {
    it(`HTTP ${status}: 'auth', fatal, one request only, no secret in the message`, async () => {
      const srv = await startServer((_, res) => sendJson(res, status, { error: 'bad key' }));
      const spec = specFor(srv.base, { request: { url: `${srv.base}/search`, headers: { authorization: 'Bearer sup3rsecret' } }, limits: { retries: 3 } });
      const client = new TargetClient(spec, { sleep: recordingSleep().sleep });
      const err = await targetError(client.search(text('q'), 5));
      expect(err.kind).toBe('auth');
      expect(err.fatal).toBe(true);
      expect(err.status).toBe(status);
      expect(err.message).toContain('bad key');
      expect(err.message).not.toContain('sup3rsecret');
      expect(srv.received).toHaveLength(1);
      expect(client.stats()).toMatchObject({ requests: 1, retries: 0, queries: 0, failures: { auth: 1 } });
    });
  }

  it('429 twice then 200: success after 2 retries, Retry-After (seconds) honoured', async () => {
    const srv = await startServer((_, res, i) => (i < 2 ? sendJson(res, 429, { error: 'slow down' }, { 'retry-after': '2' }) : sendJson(res, 200, HITS)));
    const { waits, sleep } = recordingSleep();
    const attempts: TargetAttempt[] = [];
    const client = new TargetClient(specFor(srv.base, { limits: { retries: 3, backoffMs: 100, maxBackoffMs: 8_000 } }), { sleep, onAttempt: (a) => attempts.push(a) });
    expect((await client.search(text('q'), 5)).map((h) => h.id)).toEqual(['a', 'b']);
    expect(srv.received).toHaveLength(3);
    expect(waits).toEqual([2_000, 2_000]);
    expect(attempts.map((a) => [a.retry, a.status, a.error])).toEqual([
      [0, 429, 'rate-limited'],
      [1, 429, 'rate-limited'],
      [2, 200, undefined],
    ]);
    expect(client.stats()).toMatchObject({ requests: 3, retries: 2, queries: 1, failures: {} });
  });

  it('Retry-After as an HTTP date is honoured; a Retry-After beyond maxBackoffMs is capped', async () => {
    const clock = Date.parse('2030-01-01T00:00:00Z');
    const answers = [{ 'retry-after': new Date(clock + 3_000).toUTCString() }, { 'retry-after': '120' }];
    const srv = await startServer((_, res, i) => (i < answers.length ? sendJson(res, 429, {}, answers[i]) : sendJson(res, 200, HITS)));
    const { waits, sleep } = recordingSleep();
    const client = new TargetClient(specFor(srv.base, { limits: { retries: 3, backoffMs: 100, maxBackoffMs: 5_000 } }), { sleep, now: () => clock });
    await client.search(text('q'), 5);
    expect(waits).toEqual([3_000, 5_000]);
  });

  it("endless 429: 'rate-limited' (not fatal) after retries + 1 requests", async () => {
    const srv = await startServer((_, res) => sendJson(res, 429, { error: 'quota' }));
    const client = new TargetClient(specFor(srv.base, { limits: { retries: 3, backoffMs: 10, maxBackoffMs: 1_000 } }), { sleep: recordingSleep().sleep });
    const err = await targetError(client.search(text('q'), 5));
    expect(err.kind).toBe('rate-limited');
    expect(err.fatal).toBe(false);
    expect(err.status).toBe(429);
    expect(srv.received).toHaveLength(4);
    expect(client.stats()).toMatchObject({ requests: 4, retries: 3, queries: 0, failures: { 'rate-limited': 1 } });
  });

  it("endless 503 without Retry-After: exponential backoff capped by maxBackoffMs, then 'http'", async () => {
    const srv = await startServer((_, res) => sendJson(res, 503, 'down'));
    const { waits, sleep } = recordingSleep();
    const client = new TargetClient(specFor(srv.base, { limits: { retries: 4, backoffMs: 100, maxBackoffMs: 300 } }), { sleep });
    const err = await targetError(client.search(text('q'), 5));
    expect(err).toMatchObject({ kind: 'http', status: 503, fatal: false });
    expect(waits).toEqual([100, 200, 300, 300]);
    expect(srv.received).toHaveLength(5);
  });

  it("other 4xx: 'http', not retried", async () => {
    const srv = await startServer((_, res) => sendJson(res, 400, { error: 'query too long' }));
    const client = new TargetClient(specFor(srv.base), { sleep: recordingSleep().sleep });
    const err = await targetError(client.search(text('q'), 5));
    expect(err).toMatchObject({ kind: 'http', status: 400, fatal: false });
    expect(err.message).toContain('query too long');
    expect(srv.received).toHaveLength(1);
  });

  it("a server that never answers: 'timeout' after retries + 1 attempts of timeoutMs each", async () => {
    const srv = await startServer(() => undefined);
    const client = new TargetClient(specFor(srv.base, { request: { url: `${srv.base}/search`, timeoutMs: 150 }, limits: { retries: 1 } }), { sleep: recordingSleep().sleep });
    const started = performance.now();
    const err = await targetError(client.search(text('q'), 5));
    const elapsed = performance.now() - started;
    expect(err).toMatchObject({ kind: 'timeout', fatal: false });
    expect(err.message).toContain('150 ms');
    expect(srv.received).toHaveLength(2);
    expect(elapsed).toBeGreaterThanOrEqual(2 * 150 - 10);
    expect(elapsed).toBeLessThan(5_000);
  });

  it("a server that sends headers and then stalls the body is a 'timeout' too", async () => {
    const srv = await startServer((_, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"hits": [');
    });
    const client = new TargetClient(specFor(srv.base, { request: { url: `${srv.base}/search`, timeoutMs: 150 }, limits: { retries: 0 } }));
    expect((await targetError(client.search(text('q'), 5))).kind).toBe('timeout');
  });

  it("connection refused: 'network' after retries + 1 attempts", async () => {
    const srv = await startServer(() => undefined);
    const closedBase = srv.base;
    await new Promise<void>((resolve) => srv.server.close(() => resolve()));
    const attempts: TargetAttempt[] = [];
    const client = new TargetClient(specFor(closedBase, { limits: { retries: 2 } }), { sleep: recordingSleep().sleep, onAttempt: (a) => attempts.push(a) });
    const err = await targetError(client.search(text('q'), 5));
    expect(err).toMatchObject({ kind: 'network', fatal: false });
    expect(attempts.map((a) => a.error)).toEqual(['network', 'network', 'network']);
    expect(client.stats()).toMatchObject({ requests: 3, retries: 2, failures: { network: 1 } });
  });

  it("a query kind the target does not take: 'unsupported', fatal, nothing sent", async () => {
    const srv = await startServer((_, res) => sendJson(res, 200, HITS));
    const client = new TargetClient(specFor(srv.base));
    expect(client.modalities).toEqual(['text']);
    const err = await targetError(client.search({ kind: 'image', bytes: ALL_BYTES, mime: 'image/png' }, 5));
    expect(err).toMatchObject({ kind: 'unsupported', fatal: true });
    expect(srv.received).toHaveLength(0);
  });
});

describe('budget, concurrency, rate', () => {
  it("maxQueries spent: 'budget', fatal, nothing sent", async () => {
    const srv = await startServer((_, res) => sendJson(res, 200, HITS));
    const client = new TargetClient(specFor(srv.base, { limits: { maxQueries: 2 } }));
    await client.search(text('1'), 5);
    expect(client.stats().budgetLeft).toBe(1);
    await client.search(text('2'), 5);
    const err = await targetError(client.search(text('3'), 5));
    expect(err).toMatchObject({ kind: 'budget', fatal: true });
    expect(srv.received).toHaveLength(2);
    expect(client.stats()).toMatchObject({ requests: 2, queries: 2, budgetLeft: 0, failures: { budget: 1 } });
  });

  it('retries spend the budget too: an endless 503 stops at the budget, not at the retry limit', async () => {
    const srv = await startServer((_, res) => sendJson(res, 503, {}));
    const client = new TargetClient(specFor(srv.base, { limits: { maxQueries: 3, retries: 10 } }), { sleep: recordingSleep().sleep });
    expect((await targetError(client.search(text('q'), 5))).kind).toBe('budget');
    expect(srv.received).toHaveLength(3);
  });

  it('concurrent searches never send more than the budget between them', async () => {
    const srv = await startServer((_, res) => {
      setTimeout(() => sendJson(res, 200, HITS), 20);
    });
    const client = new TargetClient(specFor(srv.base, { limits: { maxQueries: 3, concurrency: 3 } }));
    const results = await Promise.allSettled(Array.from({ length: 7 }, (_, i) => client.search(text(String(i)), 5)));
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(3);
    expect(results.filter((r) => r.status === 'rejected').map((r) => ((r as PromiseRejectedResult).reason as TargetError).kind)).toEqual(Array(4).fill('budget'));
    expect(srv.received).toHaveLength(3);
  });

  it('concurrency 2: never more than 2 requests in flight at the server, and 2 are reached', async () => {
    let inFlight = 0;
    let maxInFlight = 0;
    const srv = await startServer((_, res) => {
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      setTimeout(() => {
        inFlight--;
        sendJson(res, 200, HITS);
      }, 30);
    });
    const client = new TargetClient(specFor(srv.base, { limits: { concurrency: 2 } }));
    await Promise.all(Array.from({ length: 8 }, (_, i) => client.search(text(String(i)), 5)));
    expect(srv.received).toHaveLength(8);
    expect(maxInFlight).toBe(2);
  });

  it('ratePerSecond: sends are spaced 1/rate apart after the burst (virtual clock)', async () => {
    const srv = await startServer((_, res) => sendJson(res, 200, HITS));
    for (const [burst, expected] of [
      [1, [0, 200, 400, 600, 800]],
      [3, [0, 0, 0, 200, 400]],
    ] as const) {
      let clock = 1_000_000;
      const sendTimes: number[] = [];
      const client = new TargetClient(specFor(srv.base, { limits: { ratePerSecond: 5, burst, concurrency: 1 } }), {
        now: () => clock,
        sleep: async (ms) => {
          clock += ms;
        },
        fetch: (input, init) => {
          sendTimes.push(clock - 1_000_000);
          return fetch(input, init);
        },
      });
      await Promise.all(Array.from({ length: 5 }, (_, i) => client.search(text(String(i)), 5)));
      expect(sendTimes).toEqual(expected);
    }
  });

  it('ratePerSecond bounds the real request rate even with several requests in flight', async () => {
    const srv = await startServer((_, res) => sendJson(res, 200, HITS));
    // send times on the real clock, taken where the client hands a request to fetch: arrival times at the server
    // would add connection set-up to the first request only (and a loaded machine can delay it by tens of ms)
    const sends: number[] = [];
    const client = new TargetClient(specFor(srv.base, { limits: { ratePerSecond: 20, concurrency: 4 } }), {
      fetch: (input, init) => {
        sends.push(performance.now());
        return fetch(input, init);
      },
    });
    await Promise.all(Array.from({ length: 6 }, (_, i) => client.search(text(String(i)), 5)));
    expect(srv.received).toHaveLength(6);
    // 6 requests at 20/s with a burst of 1 take at least 5 intervals of 50 ms; timers fire late, never much early
    expect(sends[sends.length - 1] - sends[0]).toBeGreaterThanOrEqual(5 * 50 - 5);
  });
});

describe('stats()', () => {
  it('latency percentiles (nearest rank) and counts match what happened', async () => {
    const srv = await startServer((req, res) => (req.url.searchParams.get('fail') ? sendJson(res, 500, {}) : sendJson(res, 200, HITS)));
    const latencies = [30, 10, 50, 20, 40, 60, 70, 80, 90, 100];
    let clock = 0;
    let next = 0;
    const client = new TargetClient(
      specFor(srv.base, { text: { body: { q: '{{text}}' }, query: { fail: '{{text}}' } }, limits: { retries: 1, maxQueries: 100 } }),
      {
        now: () => clock,
        sleep: recordingSleep().sleep,
        fetch: async (input, init) => {
          const res = await fetch(input, init);
          clock += latencies[next++] ?? 1_000;
          return res;
        },
      },
    );
    for (let i = 0; i < latencies.length; i++) await client.search(text(''), 5);
    const failures: TargetErrorKind[] = [];
    failures.push((await targetError(client.search(text('yes'), 5))).kind);
    await expect(client.search(text('x'), 0)).rejects.toThrow(RangeError);
    expect(failures).toEqual(['http']);
    expect(client.stats()).toEqual({
      requests: 12,
      queries: 10,
      retries: 1,
      failures: { http: 1 },
      latencyMs: { count: 10, p50: 50, p90: 90, p99: 100, max: 100, mean: 55 },
      budgetLeft: 88,
    });
  });

  it('a fresh client reports zeros', () => {
    const spec = specFor('http://127.0.0.1:9', { limits: { maxQueries: 5 } });
    expect(new TargetClient(spec).stats()).toEqual({
      requests: 0,
      queries: 0,
      retries: 0,
      failures: {},
      latencyMs: { count: 0, p50: 0, p90: 0, p99: 0, max: 0, mean: 0 },
      budgetLeft: 5,
    });
  });
});
