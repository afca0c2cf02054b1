/**
 * `--shard-bytes` on the commands that write artifacts (`manyfold import`, `manyfold train`): the size parser names
 * the flag and the bad value; an import run as a user runs it (the CLI in a child process) writes shards no larger
 * than asked, with the same content id as the default sharding; a tensor larger than the size gets a shard of its own.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bytesFlag } from '../../src/cli/flags.js';
import { readManifest, verifyArtifact } from '../../src/model/artifact.js';
import { importClipCheckpoint } from '../../src/model/clip/import.js';
import { rmrf, tmp } from '../api/helpers.js';
import { buildTinyCheckpoint } from '../reference/build-checkpoints.js';
import { generateScenes } from '../../src/data/scenes/generate.js';

const run = promisify(execFile);
let root: string;
let ckpt: string;

beforeAll(async () => {
  root = tmp('shard-bytes');
  ckpt = (await buildTinyCheckpoint(join(root, 'ckpt'), 'hf-f32-quickgelu-argmax')).dir;
});
afterAll(() => rmrf(root));

describe('--shard-bytes', () => {
  it('parses bytes with binary units and refuses anything else', () => {
    const parse = bytesFlag(4);
    expect(parse('25165824')).toBe(25_165_824);
    expect(parse('24MiB')).toBe(24 * 1024 * 1024);
    expect(parse('24m')).toBe(24 * 1024 * 1024);
    expect(parse('64KiB')).toBe(65_536);
    expect(parse('1.5GiB')).toBe(1.5 * 1024 ** 3);
    expect(() => parse('24MB!')).toThrow('expected bytes (an integer, or with KiB / MiB / GiB), got "24MB!"');
    expect(() => parse('2')).toThrow('expected at least 4 bytes, got 2');
  });

  it('manyfold import --shard-bytes 16KiB: every shard within 16 KiB unless one tensor is larger, same id as 32 MiB shards', async () => {
    const ref = await importClipCheckpoint({ from: ckpt, out: join(root, 'default'), log: () => undefined });
    const out = join(root, 'small-shards');
    await run(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'import', '--from', ckpt, '--out', out, '--shard-bytes', '16KiB'], { env: { ...process.env, MANYFOLD_DEBUG: '' } });
    const m = await verifyArtifact(out);
    expect(m.id).toBe(ref.manifest.id);
    const shards = m.files.filter((f) => f.path.startsWith('weights-'));
    expect(shards.length).toBeGreaterThan((await readManifest(join(root, 'default'))).files.filter((f) => f.path.startsWith('weights-')).length);
    for (const f of shards) {
      const tensors = m.weights.filter((w) => w.file === f.path);
      // a shard above the size holds exactly one tensor (one tensor never spans two shards)
      if (f.bytes > 16 * 1024) expect(tensors, f.path).toHaveLength(1);
    }
    const bad = await run(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'import', '--from', ckpt, '--out', join(root, 'bad'), '--shard-bytes', 'lots'], {
      env: { ...process.env, MANYFOLD_DEBUG: '' },
    }).catch((e: { stderr: string; code: number }) => e);
    expect((bad as { code: number }).code).not.toBe(0);
    expect((bad as { stderr: string }).stderr).toContain("option '--shard-bytes <size>' argument 'lots' is invalid");
  });

  it('manyfold train --shard-bytes 64KiB: the saved model is in shards of at most 64 KiB unless one tensor is larger', async () => {
    const data = (await generateScenes({ out: join(root, 'scenes'), train: 8, val: 0, test: 0, seed: 1 })).file;
    const out = join(root, 'run');
    const args = ['train', '--data', data, '--out', out, '--max-steps', '1', '--batch', '4', '--backend', 'wasm', '--no-eval', '--quiet', '--shard-bytes', '64KiB'];
    await run(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], { env: { ...process.env, MANYFOLD_DEBUG: '' } });
    const m = await verifyArtifact(join(out, 'model'));
    const shards = m.files.filter((f) => f.path.startsWith('weights-'));
    expect(shards.length).toBeGreaterThan(10); // a tiny model is ~3 MB: one shard at the default 32 MiB
    for (const f of shards) if (f.bytes > 64 * 1024) expect(m.weights.filter((w) => w.file === f.path), f.path).toHaveLength(1);
  });
});
