/**
 * `manyfold eval --attack` as users run it: one process, a tiny model trained here, the reports it writes, the
 * release-bar exit code and clear errors for bad flags.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateScenes } from '../../src/data/scenes/generate.js';

const root = join(import.meta.dirname, '..', '..');
const cli = ['--import', pathToFileURL(join(root, 'node_modules', 'tsx', 'dist', 'loader.mjs')).href, join(root, 'src', 'cli', 'main.ts')];

let dir: string;
let data: string;
const run = (...args: string[]) => spawnSync(process.execPath, [...cli, ...args], { encoding: 'utf8', timeout: 240_000 });

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'mf-eval-cli-'));
}, 10_000);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('manyfold eval --attack', () => {
  it('writes JSON / Markdown / HTML reports of the one robust-recall engine; --fail-below exits 3; bad flags name themselves', async () => {
    data = (await generateScenes({ out: join(dir, 'scenes'), train: 32, val: 0, test: 10, seed: 4 })).file;
    const train = run('train', '--data', data, '--out', join(dir, 'run'), '--epochs', '1', '--batch', '16', '--seed', '1', '--backend', 'wasm', '--no-eval', '--quiet');
    expect(train.status, train.stderr).toBe(0);
    const model = join(dir, 'run');
    const files = { json: join(dir, 'r', 'report.json'), md: join(dir, 'r', 'report.md'), html: join(dir, 'r', 'report.html') };
    const common = ['eval', '--model', model, '--data', data, '--attack', 'pgd,text', '--eps', '2,8', '--steps', '2', '--limit', '6', '--backend', 'wasm', '--quiet'];
    const ok = run(...common, '--json', files.json, '--md', files.md, '--html', files.html, '--resamples', '100');
    expect(ok.status, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/^# Robust recall of /);
    const report = JSON.parse(readFileSync(files.json, 'utf8')) as { format: string; attacks: { label: string }[]; queries: { images: number }; sanity: { checks: unknown[] }; split: string };
    expect(report.format).toBe('manyfold-robust/1');
    expect(report.attacks.map((a) => a.label)).toEqual(['pgd@2', 'pgd@8', 'text']);
    expect(report.queries.images).toBe(6);
    expect(report.split).toBe('test');
    expect(report.sanity.checks.length).toBeGreaterThan(0);
    expect(readFileSync(files.md, 'utf8')).toContain('| pgd@8 | white-box |');
    const html = readFileSync(files.html, 'utf8');
    expect(html).toContain('Robustness curves');
    expect(html).toContain('Adversarial examples');

    const gated = run(...common, '--fail-below', 'clean.tr.r1=101');
    expect(gated.status).toBe(3);
    expect(gated.stderr).toMatch(/below the bar: clean\.tr\.r1 = .* < 101/);

    const bad = run('eval', '--model', model, '--data', data, '--attack', 'pgd,nope', '--backend', 'wasm', '--quiet');
    expect(bad.status).not.toBe(0);
    expect(bad.stderr).toMatch(/unknown attack 'nope'/);
    expect(existsSync(join(dir, 'r', 'nope'))).toBe(false);
  }, 300_000);
});
