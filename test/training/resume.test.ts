import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateScenes } from '../../src/data/scenes/generate.js';

const root = join(import.meta.dirname, '..', '..');
// one process (tsx as a loader, not the tsx CLI which forks a child), so SIGKILL really kills the trainer
const cli = ['--import', pathToFileURL(join(root, 'node_modules', 'tsx', 'dist', 'loader.mjs')).href, join(root, 'src', 'cli', 'main.ts')];

let dir: string;
let data: string;

function trainArgs(out: string): string[] {
  return [...cli, 'train', '--data', data, '--out', out, '--epochs', '2', '--batch', '16', '--checkpoint-every', '2', '--seed', '7', '--backend', 'wasm', '--no-eval', '--quiet'];
}

function manifestId(out: string): string {
  return (JSON.parse(readFileSync(join(out, 'model', 'manifest.json'), 'utf8')) as { id: string }).id;
}

function metricLines(out: string): { step: number; loss: number }[] {
  const path = join(out, 'metrics.jsonl');
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter((l) => l.trim())
    .flatMap((l) => {
      try {
        return [JSON.parse(l) as { step: number; loss: number }];
      } catch {
        return [];
      }
    });
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mf-resume-'));
  data = (await generateScenes({ out: join(dir, 'scenes'), train: 96, val: 0, test: 8, seed: 3 })).file;
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('training resume after SIGKILL', () => {
  it('a run killed mid-epoch and resumed ends with bit-identical weights and the same loss curve as an uninterrupted run', async () => {
    const straight = join(dir, 'straight');
    const r = spawnSync(process.execPath, trainArgs(straight), { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);

    const killed = join(dir, 'killed');
    const child = spawn(process.execPath, trainArgs(killed), { stdio: ['ignore', 'ignore', 'pipe'] });
    // 96 images / batch 16 = 6 steps per epoch; kill after step 5 (the last checkpoint was at step 4, mid-epoch 0)
    await new Promise<void>((resolve, reject) => {
      const timer = setInterval(() => {
        if (metricLines(killed).length >= 5) {
          clearInterval(timer);
          child.kill('SIGKILL');
          resolve();
        }
      }, 20);
      child.on('exit', (code) => {
        clearInterval(timer);
        if (code !== null) reject(new Error(`training exited (${code}) before it could be killed`));
      });
    });
    await new Promise((res) => child.once('exit', res));
    expect(existsSync(join(killed, 'model', 'manifest.json'))).toBe(false);
    const before = metricLines(killed).length;
    expect(before).toBeGreaterThanOrEqual(5);
    expect(before).toBeLessThan(12);

    // without --resume the run refuses to overwrite the checkpoint
    const refused = spawnSync(process.execPath, trainArgs(killed), { encoding: 'utf8' });
    expect(refused.status).not.toBe(0);
    expect(refused.stderr).toMatch(/--resume/);

    const resumed = spawnSync(process.execPath, [...trainArgs(killed), '--resume'], { encoding: 'utf8' });
    expect(resumed.status, resumed.stderr).toBe(0);

    // content-derived ids hash every weight: equal ids mean bit-identical weights
    expect(manifestId(killed)).toBe(manifestId(straight));
    const a = metricLines(straight);
    const b = metricLines(killed);
    expect(b.map((m) => m.step)).toEqual(a.map((m) => m.step));
    expect(b.map((m) => m.loss)).toEqual(a.map((m) => m.loss));
  });

  it('--threads 2 (wasm XNNPACK worker threads) gives bit-identical weights and the process exits on its own', () => {
    const straight = join(dir, 'straight');
    const threaded = join(dir, 'threaded');
    // a hang (workers keeping the event loop alive) fails here through the timeout rather than hanging the suite
    const r = spawnSync(process.execPath, [...trainArgs(threaded), '--threads', '2'], { encoding: 'utf8', timeout: 120_000 });
    expect(r.signal, 'the threaded run did not exit by itself').toBeNull();
    expect(r.status, r.stderr).toBe(0);
    // the workaround may fall back to one thread on some machines; either way the weights must not change
    expect(manifestId(threaded)).toBe(manifestId(straight));
    const backend = (JSON.parse(readFileSync(join(threaded, 'train.json'), 'utf8')) as { backend: string }).backend;
    expect(backend).toMatch(/^wasm \(.*(2 XNNPACK threads|single-threaded XNNPACK \(SIMD\): 2 threads requested)/);
  });

  it('SIGTERM to `manyfold train` as users start it (bin/manyfold.js): the step finishes, a checkpoint is written, exit 143, nothing left running; --resume ends bit-identical', async () => {
    const straight = join(dir, 'straight');
    const stopped = join(dir, 'sigterm');
    // the bin, not the loader: one process, so the signal reaches the trainer itself
    const args = ['bin/manyfold.js', ...trainArgs(stopped).slice(cli.length), '--checkpoint-every', '100'];
    const child = spawn(process.execPath, args, { cwd: root, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (d) => (stderr += d));
    // signal after step 3: with --checkpoint-every 100 the only checkpoint before the end of epoch 0 is the one the
    // graceful stop writes
    await new Promise<void>((resolve, reject) => {
      const timer = setInterval(() => {
        if (metricLines(stopped).length >= 3) {
          clearInterval(timer);
          child.kill('SIGTERM');
          resolve();
        }
      }, 20);
      child.on('exit', (code) => {
        clearInterval(timer);
        if (code !== null) reject(new Error(`training exited (${code}) before the signal: ${stderr}`));
      });
    });
    const code = await new Promise<number | null>((res) => child.once('exit', res));
    expect(code, stderr).toBe(143);
    expect(stderr).toMatch(/SIGTERM: stopping after the current step/);
    expect(stderr).toMatch(/continue with the same command and --resume/);
    expect(existsSync(join(stopped, 'checkpoint.mfck'))).toBe(true);
    expect(existsSync(join(stopped, 'model', 'manifest.json'))).toBe(false);
    const atStop = metricLines(stopped).length;
    expect(atStop).toBeGreaterThanOrEqual(3);
    expect(atStop).toBeLessThan(6); // stopped within epoch 0, not run to the end
    // no process of this run is left (the launcher spawned no child that could outlive it)
    const ps = spawnSync('ps', ['-eo', 'args'], { encoding: 'utf8' }).stdout;
    expect(ps.split('\n').filter((l) => l.includes(stopped))).toEqual([]);

    const resumed = spawnSync(process.execPath, [...args, '--resume'], { cwd: root, encoding: 'utf8' });
    expect(resumed.status, resumed.stderr).toBe(0);
    expect(manifestId(stopped)).toBe(manifestId(straight));
    expect(metricLines(stopped).map((m) => m.loss)).toEqual(metricLines(straight).map((m) => m.loss));
  });

  it('resume refuses a checkpoint made with other settings and names the difference', () => {
    const out = join(dir, 'straight');
    const r = spawnSync(process.execPath, [...trainArgs(out).map((a) => (a === '16' ? '32' : a)), '--resume'], { encoding: 'utf8' });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/batch: checkpoint 16 vs now 32/);
  });
});
