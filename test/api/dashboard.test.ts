/**
 * The dashboard (GET /dashboard) in headless Chromium (Debian's `chromium`, driven by playwright-core) against a
 * real server on 127.0.0.1 (tiny untrained model, LanceDB in a temp dir, six items): key entry (a wrong key is
 * refused; the right one is kept in sessionStorage across a reload), a text search and an image-upload search
 * whose grids show the ids the JSON API returns (with thumbnails from GET /v1/items/{id}/image), a probe started
 * from the page that shows up in the list, runs to the end and draws its robustness curve, the HTML report in
 * its dialog, and a key without the probe scope. Throughout: no console errors other than the expected 401/403
 * resource errors, no page errors, no request to anything but the loopback server. Screenshot:
 * test-artifacts/dashboard.png.
 *
 * Without /usr/bin/chromium the suite is skipped locally and FAILS under CI=true (CI installs the package).
 */
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../src/node/server.js';
import { CAPTIONS, KEYS, client, makeModels, png, rmrf, start, tmp } from './helpers.js';

const CHROMIUM = '/usr/bin/chromium';
const HAVE_CHROMIUM = existsSync(CHROMIUM);
const IN_CI = /^(1|true)$/i.test(process.env.CI ?? '');
const ARTIFACTS = join(process.cwd(), 'test-artifacts');

const ITEMS: { id: string; rgb: [number, number, number]; caption: string; metadata: Record<string, string | number> }[] = [
  { id: 'red', rgb: [220, 30, 30], caption: CAPTIONS[0], metadata: { color: 'red', n: 1 } },
  { id: 'green', rgb: [30, 200, 60], caption: CAPTIONS[1], metadata: { color: 'green', n: 2 } },
  { id: 'purple', rgb: [140, 40, 180], caption: CAPTIONS[2], metadata: { color: 'purple', n: 3 } },
  { id: 'brown', rgb: [120, 80, 30], caption: CAPTIONS[3], metadata: { color: 'brown', n: 4 } },
  { id: 'white', rgb: [240, 240, 240], caption: CAPTIONS[4], metadata: { color: 'white', n: 5 } },
  { id: 'blue', rgb: [30, 60, 220], caption: CAPTIONS[5], metadata: { color: 'blue', n: 6 } },
];

let root: string;
let srv: RunningServer;
let call: ReturnType<typeof client>;
let modelId: string;
let ctx: BrowserContext;
let page: Page;
const pngs = new Map<string, Buffer>();
const requests: string[] = [];
const consoleErrors: { phase: string; text: string }[] = [];
const pageErrors: string[] = [];
let phase = 'load';

beforeAll(async () => {
  root = tmp('dash');
  const m = (await makeModels(`${root}/models`, [11]))[0];
  modelId = m.id;
  srv = await start({ modelDir: m.dir, dataDir: `${root}/data` });
  call = client(srv.url);
  const items = [];
  for (const [i, it] of ITEMS.entries()) {
    const b = await png(40, 30, it.rgb, i);
    pngs.set(it.id, b);
    items.push({ id: it.id, image: b.toString('base64'), captions: [it.caption, `${it.id} picture number ${i}`], metadata: it.metadata });
  }
  const up = await call('POST', '/v1/items', { key: KEYS.write, json: { items } });
  expect(up.status, up.text).toBe(200);
});

afterAll(async () => {
  await srv?.close().catch(() => undefined);
  if (root) rmrf(root);
});

describe('GET /dashboard and GET /v1/items/{id}/image (HTTP)', () => {
  it('serves the page and its assets without a key, with a same-origin CSP and no external URLs', async () => {
    const r = await fetch(`${srv.url}/dashboard`);
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toMatch(/^text\/html/);
    const csp = r.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("connect-src 'self'");
    const html = await r.text();
    for (const [path, type] of [['/dashboard/app.js', /^text\/javascript/], ['/dashboard/app.css', /^text\/css/]] as const) {
      const a = await fetch(`${srv.url}${path}`);
      expect(a.status, path).toBe(200);
      expect(a.headers.get('content-type')).toMatch(type);
      const body = await a.text();
      expect(body.length).toBeGreaterThan(500);
      expect(body, path).not.toMatch(/https?:\/\/(?!www\.w3\.org\/2000\/svg)/);
    }
    expect(html).not.toMatch(/https?:\/\//);
    expect(html).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/); // no inline scripts
    const slash = await fetch(`${srv.url}/dashboard/`, { redirect: 'manual' });
    expect(slash.status).toBe(301);
    expect(new URL(slash.headers.get('location')!, `${srv.url}/dashboard/`).pathname).toBe('/dashboard');
    const spec = await call('GET', '/openapi.json');
    expect(spec.body.paths['/v1/items/{id}/image']).toBeDefined();
  });

  it('image bytes: search scope, content type, ETag/304, 404s', async () => {
    expect((await call('GET', '/v1/items/red/image')).status).toBe(401);
    expect((await call('GET', '/v1/items/red/image', { key: KEYS.write })).status).toBe(403);
    const r = await fetch(`${srv.url}/v1/items/red/image`, { headers: { authorization: `Bearer ${KEYS.search}` } });
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toBe('image/png');
    expect(r.headers.get('x-content-type-options')).toBe('nosniff');
    expect(Buffer.from(await r.arrayBuffer()).equals(pngs.get('red')!)).toBe(true);
    const etag = r.headers.get('etag')!;
    expect(etag).toMatch(/^"[0-9a-f]{64}"$/);
    const again = await fetch(`${srv.url}/v1/items/red/image`, { headers: { authorization: `Bearer ${KEYS.search}`, 'if-none-match': etag } });
    expect(again.status).toBe(304);
    expect((await call('GET', '/v1/items/nope/image', { key: KEYS.search })).body.error.code).toBe('not_found');
    expect((await call('POST', '/v1/items', { key: KEYS.write, json: { namespace: 'textonly', items: [{ id: 'cap', captions: ['just words'] }] } })).status).toBe(200);
    const noImg = await call('GET', '/v1/items/cap/image?namespace=textonly', { key: KEYS.search });
    expect(noImg.status).toBe(404);
    expect(noImg.body.error.message).toContain('has no image');
    expect((await call('GET', '/v1/items/red/image?namespace=bad%20ns', { key: KEYS.search })).status).toBe(422);
    // ids are path segments: '/', spaces and non-ASCII survive encodeURIComponent (as the page sends them)
    const odd = 'dir/ünï côdé?#';
    expect((await call('POST', '/v1/items', { key: KEYS.write, json: { namespace: 'textonly', items: [{ id: odd, image: pngs.get('green')!.toString('base64'), captions: ['odd id'] }] } })).status).toBe(200);
    const oddImg = await fetch(`${srv.url}/v1/items/${encodeURIComponent(odd)}/image?namespace=textonly`, { headers: { authorization: `Bearer ${KEYS.search}` } });
    expect(oddImg.status).toBe(200);
    expect(Buffer.from(await oddImg.arrayBuffer()).equals(pngs.get('green')!)).toBe(true);
  });
});

describe.skipIf(!HAVE_CHROMIUM && !IN_CI)('dashboard (headless Chromium)', () => {
  beforeAll(async () => {
    if (!HAVE_CHROMIUM) {
      throw new Error(`${CHROMIUM} is missing: the dashboard test needs Debian's chromium package (apt-get install -y chromium; .ci/run installs it). It is required when CI=true.`);
    }
    ctx = await chromium.launchPersistentContext(`${root}/chromium-profile`, {
      executablePath: CHROMIUM,
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
      viewport: { width: 1280, height: 900 },
    });
    ctx.on('request', (r) => requests.push(r.url()));
    page = ctx.pages()[0] ?? (await ctx.newPage());
    page.on('console', (msg) => {
      if (msg.type() === 'error') consoleErrors.push({ phase, text: msg.text() });
    });
    page.on('pageerror', (e) => pageErrors.push(String(e)));
    page.setDefaultTimeout(15_000);
  });

  afterAll(async () => {
    await ctx?.close().catch(() => undefined);
  });

  const ids = () => page.locator('#results > li').evaluateAll((els) => els.map((e) => (e as HTMLElement).dataset.id));
  async function searchFor(expectedCount: number) {
    await page.getByRole('button', { name: 'Search', exact: true }).click();
    await expect.poll(async () => (await page.locator('#search-status').textContent()) ?? '', { timeout: 15_000 }).toMatch(/results? for the/);
    await expect.poll(() => page.locator('#results > li').count()).toBe(expectedCount);
  }

  it('serves the page without a key and refuses a wrong one', async () => {
    const res = await page.goto(`${srv.url}/dashboard`);
    expect(res?.status()).toBe(200);
    expect(res?.headers()['content-security-policy']).toContain("default-src 'none'");
    await expect.poll(() => page.evaluate(() => document.body.dataset.ready)).toBe('true');
    expect(await page.title()).toBe('Manyfold dashboard');
    expect(await page.locator('#probes-empty').textContent()).toContain('Enter a key');
    expect(await page.locator('#results-empty').textContent()).toContain('No search yet');
    // a search without a key explains itself instead of failing silently
    await page.getByLabel('Text query').fill('a red circle');
    await page.getByRole('button', { name: 'Search', exact: true }).click();
    await expect.poll(() => page.locator('#search-error').textContent()).toContain('Enter an API key first');

    phase = 'wrong-key';
    await page.getByLabel('Bearer key').fill('wrong-key-0123456789');
    await page.getByRole('button', { name: 'Use key' }).click();
    await expect.poll(() => page.locator('#key-status').textContent()).toContain('rejected');
    expect(await page.locator('#model-info').textContent()).toBe('Not connected');
    phase = 'ok';
  });

  it('accepts the key, keeps it in sessionStorage and lists no probes yet', async () => {
    await page.getByLabel('Bearer key').fill(KEYS.admin);
    await page.getByRole('button', { name: 'Use key' }).click();
    await expect.poll(() => page.locator('#key-status').textContent()).toBe('Key accepted.');
    expect(await page.locator('#model-info').textContent()).toContain(modelId);
    expect(await page.evaluate(() => sessionStorage.getItem('manyfold.apiKey'))).toBe(KEYS.admin);
    await expect.poll(() => page.locator('#probes-empty').textContent()).toContain('No probes yet');
  });

  it('text search: the grid shows the ids the API returns, with captions and thumbnails', async () => {
    await page.getByLabel('Text query').fill(CAPTIONS[1]);
    await page.getByLabel('Find').selectOption('texts');
    await page.getByLabel('Top K').fill('5');
    await searchFor(5);
    const api = await call('POST', '/v1/search', { key: KEYS.search, json: { text: CAPTIONS[1], target: 'texts', topK: 5 } });
    expect(await ids()).toEqual(api.body.results.map((r: any) => r.id));
    const first = page.locator('#results > li').first();
    expect(await first.getAttribute('data-id')).toBe('green');
    expect(await first.locator('.caption').textContent()).toBe(CAPTIONS[1]);
    expect(await first.locator('.score').textContent()).toMatch(/^score (1\.0000|0\.99\d\d)$/);
    expect(await first.locator('dl').textContent()).toContain('green');

    // text -> images: ids as the API ranks them; every card gets its thumbnail and first caption
    await page.getByLabel('Find').selectOption('images');
    await page.getByLabel('Top K').fill('6');
    await searchFor(6);
    const api2 = await call('POST', '/v1/search', { key: KEYS.search, json: { text: CAPTIONS[1], target: 'images', topK: 6 } });
    expect(await ids()).toEqual(api2.body.results.map((r: any) => r.id));
    await expect
      .poll(() => page.locator('#results > li .thumb img').evaluateAll((imgs) => imgs.filter((i) => (i as HTMLImageElement).complete && (i as HTMLImageElement).naturalWidth === 40).length))
      .toBe(6);
    const caps = await page.locator('#results > li .caption').allTextContents();
    expect(caps.every((c) => CAPTIONS.includes(c))).toBe(true);
    expect(await page.locator('#results > li .thumb img').first().getAttribute('src')).toMatch(/^blob:/);
  });

  it('image upload search: the query image finds itself first', async () => {
    await page.getByLabel('Text query').fill('');
    await page.getByLabel('or an image').setInputFiles({ name: 'blue.png', mimeType: 'image/png', buffer: pngs.get('blue')! });
    expect(await page.getByLabel('Text query').isDisabled()).toBe(true);
    await expect.poll(() => page.locator('#q-preview').evaluate((i) => (i as HTMLImageElement).naturalWidth)).toBe(40);
    await page.getByLabel('Find').selectOption('images');
    await page.getByLabel('Top K').fill('3');
    await searchFor(3);
    const api = await call('POST', '/v1/search', { key: KEYS.search, json: { image: pngs.get('blue')!.toString('base64'), target: 'images', topK: 3 } });
    expect(await ids()).toEqual(api.body.results.map((r: any) => r.id));
    expect((await ids())[0]).toBe('blue');
    expect(await page.locator('#search-status').textContent()).toContain('image query');
    await expect.poll(() => page.locator('#results > li .thumb img').count()).toBe(3);
  });

  it('starts a probe (ε sweep) that appears in the list, finishes and draws its robustness curve; the report opens', async () => {
    await page.getByLabel('Sample').fill('3');
    await page.getByLabel('Suite').selectOption('sweep');
    await page.getByRole('button', { name: 'Start probe' }).click();
    await expect.poll(() => page.locator('#probe-status').textContent()).toMatch(/^Started probe \S+ \((queued|running)\)\.$/);
    const li = page.locator('#probes > li');
    await expect.poll(() => li.count()).toBe(1);
    const id = await li.first().getAttribute('data-id');
    const listed = await call('GET', '/v1/probes', { key: KEYS.probe });
    expect(listed.body.probes.map((p: any) => p.id)).toEqual([id]);
    expect(await li.first().locator('progress').count()).toBe(1);
    await expect.poll(() => li.first().getAttribute('data-status'), { timeout: 45_000, interval: 250 }).toBe('succeeded');
    // the curve: one line (pgd attacks image queries) over clean + 4 budgets
    const svg = li.first().locator('svg[role="img"]');
    await expect.poll(() => svg.count()).toBe(1);
    expect(await svg.locator('title').first().textContent()).toContain('R@1 vs ε');
    expect(await svg.locator('polyline').count()).toBe(1);
    expect(await svg.locator('circle').count()).toBe(5);
    expect(await li.first().locator('.summary').textContent()).toMatch(/R@1 clean: image→text \d/);
    const rows = await li.first().locator('details table tbody tr').count();
    expect(rows).toBe(5);

    await li.first().getByRole('button', { name: 'View report' }).click();
    await expect.poll(() => page.locator('#report-dialog').evaluate((d) => (d as HTMLDialogElement).open)).toBe(true);
    const frame = page.frameLocator('#report-frame');
    await expect.poll(async () => (await frame.locator('h1').textContent()) ?? '').toContain(`Attack probe ${id}`);
    expect(await page.locator('#report-open').getAttribute('href')).toMatch(/^blob:/);
    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: join(ARTIFACTS, 'dashboard-report.png') });
    await page.getByRole('button', { name: 'Close' }).click();
    expect(await page.locator('#report-dialog').evaluate((d) => (d as HTMLDialogElement).open)).toBe(false);

    // a second probe, quick suite (one budget per attack): clean vs robust R@1 bars; listed first (newest first)
    await page.getByLabel('Sample').fill('2');
    await page.getByLabel('Suite').selectOption('quick');
    await page.getByRole('button', { name: 'Start probe' }).click();
    await expect.poll(() => li.count()).toBe(2);
    const quick = li.first();
    expect(await quick.getAttribute('data-id')).not.toBe(id);
    expect(await li.nth(1).getAttribute('data-id')).toBe(id);
    await expect.poll(() => quick.getAttribute('data-status'), { timeout: 45_000, interval: 250 }).toBe('succeeded');
    const bars = quick.locator('svg[role="img"]');
    await expect.poll(() => bars.count()).toBe(1);
    expect(await bars.locator('title').first().textContent()).toContain('Clean vs robust');
    // pgd image→text, text text→image, blackbox-text text→image, worst case in both directions: 5 pairs of bars
    expect(await bars.locator('rect.bar').count()).toBe(10);
    expect(await bars.locator('rect.bar.clean').count()).toBe(5);

    // for the screenshot: a text search with thumbnails above the two probes
    await page.getByRole('button', { name: 'Remove image' }).click();
    await page.getByLabel('Text query').fill('a red circle next to a small blue square');
    await page.getByLabel('Find').selectOption('');
    await page.getByLabel('Top K').fill('6');
    await searchFor(6);
    await expect.poll(() => page.locator('#results > li .thumb img').count()).toBe(6);
    await page.screenshot({ path: join(ARTIFACTS, 'dashboard.png'), fullPage: true });
  });

  it('the key survives a reload; a key without the probe scope hides probes with a message', async () => {
    await page.reload();
    await expect.poll(() => page.locator('#key-status').textContent()).toBe('Key accepted.');
    await expect.poll(() => page.locator('#probes > li').count()).toBe(2);
    await expect.poll(() => page.locator('#probes > li svg polyline').count()).toBe(1);
    await expect.poll(() => page.locator('#probes > li svg rect.bar').count()).toBe(10);

    phase = 'search-key';
    await page.getByLabel('Bearer key').fill(KEYS.search);
    await page.getByRole('button', { name: 'Use key' }).click();
    await expect.poll(() => page.locator('#probes-empty').textContent()).toContain('lacks the probe scope');
    expect(await page.locator('#probes > li').count()).toBe(0);
    phase = 'ok';
    await page.getByRole('button', { name: 'Forget' }).click();
    expect(await page.evaluate(() => sessionStorage.getItem('manyfold.apiKey'))).toBeNull();
  });

  it('no console or page errors beyond the expected 401/403, and no request left the loopback server', () => {
    expect(pageErrors).toEqual([]);
    const unexpected = consoleErrors.filter((e) => !(e.phase === 'wrong-key' && /status of 401/.test(e.text)) && !(e.phase === 'search-key' && /status of 403/.test(e.text)));
    expect(unexpected).toEqual([]);
    const origin = new URL(srv.url).origin;
    const outside = requests.filter((u) => !u.startsWith(`${origin}/`) && !u.startsWith('blob:') && !u.startsWith('data:'));
    expect(outside).toEqual([]);
    expect(requests.some((u) => u.includes('/v1/items/') && u.endsWith('/image'))).toBe(true);
  });
});
