/**
 * src/util/atomic.ts: the one atomic-write helper (files, JSON, streamed sync files, directories). Readers see
 * the old content or the new, never a torn file; failures leave the old content and no temporary sibling; a
 * process killed with SIGKILL in the middle of a write leaves the previous complete version.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { tempSibling, writeDirAtomic, writeFileAtomic, writeFileAtomicSync, writeJsonAtomic } from '../../src/util/atomic.js';

const root = mkdtempSync(join(tmpdir(), 'manyfold-atomic-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const fresh = (): string => {
  const d = join(root, `case-${++n}`);
  mkdirSync(d);
  return d;
};
/** names in `dir` that are temporary siblings (hidden, ending in .tmp) */
const leftovers = (dir: string): string[] => readdirSync(dir).filter((f) => f.startsWith('.') || f.endsWith('.tmp'));

describe('writeFileAtomic / writeJsonAtomic', () => {
  it('creates the directory, writes, replaces, and leaves no temporary file', async () => {
    const dir = fresh();
    const file = join(dir, 'a', 'b', 'x.bin');
    await writeFileAtomic(file, new Uint8Array([1, 2, 3]));
    expect([...readFileSync(file)]).toEqual([1, 2, 3]);
    await writeFileAtomic(file, 'replaced', { fsync: false });
    expect(readFileSync(file, 'utf8')).toBe('replaced');
    expect(leftovers(join(dir, 'a', 'b'))).toEqual([]);
  });

  it('writes JSON with one trailing newline, compact or indented', async () => {
    const dir = fresh();
    await writeJsonAtomic(join(dir, 'c.json'), { a: [1, 2] });
    await writeJsonAtomic(join(dir, 'i.json'), { a: 1 }, { indent: 2 });
    expect(readFileSync(join(dir, 'c.json'), 'utf8')).toBe('{"a":[1,2]}\n');
    expect(readFileSync(join(dir, 'i.json'), 'utf8')).toBe('{\n  "a": 1\n}\n');
  });

  it('a failed rename throws and removes the temporary file', async () => {
    const dir = fresh();
    const target = join(dir, 'occupied');
    mkdirSync(join(target, 'child'), { recursive: true }); // a non-empty directory: rename onto it fails
    await expect(writeFileAtomic(target, 'x')).rejects.toThrow(/EISDIR|ENOTEMPTY|EEXIST/);
    expect(leftovers(dir)).toEqual([]);
  });

  it('concurrent writers of one file: the result is one writer\'s whole content', async () => {
    const dir = fresh();
    const file = join(dir, 'race.bin');
    const versions = Array.from({ length: 16 }, (_, v) => new Uint8Array(64 * 1024).fill(v));
    await Promise.all(versions.map((bytes) => writeFileAtomic(file, bytes, { fsync: false })));
    const got = readFileSync(file);
    expect(got.length).toBe(64 * 1024);
    expect(got.every((b) => b === got[0])).toBe(true);
    expect(leftovers(dir)).toEqual([]);
  });

  it('temporary names are hidden, unique and end in .tmp (listings that skip them stay correct)', () => {
    const a = tempSibling('/d/file.json');
    const b = tempSibling('/d/file.json');
    expect(a).not.toBe(b);
    expect(a).toMatch(/^\/d\/\.file\.json\.tmp-\d+-[0-9a-f]{8}\.tmp$/);
    expect(tempSibling('/d/model', 'old')).toMatch(/^\/d\/\.model\.old-/);
  });
});

describe('writeFileAtomicSync', () => {
  it('writes the parts in order, pulling each only when it is written', () => {
    const dir = fresh();
    const file = join(dir, 'ck.bin');
    const pulled: number[] = [];
    function* parts(): Generator<Uint8Array> {
      for (let i = 0; i < 3; i++) {
        pulled.push(i);
        yield new Uint8Array([i, i]);
      }
    }
    writeFileAtomicSync(file, parts());
    expect([...readFileSync(file)]).toEqual([0, 0, 1, 1, 2, 2]);
    expect(pulled).toEqual([0, 1, 2]);
    expect(leftovers(dir)).toEqual([]);
  });

  it('a failure while producing the content keeps the previous file and removes the temporary one', () => {
    const dir = fresh();
    const file = join(dir, 'ck.bin');
    writeFileSync(file, 'previous');
    function* failing(): Generator<Uint8Array> {
      yield new Uint8Array([9]);
      throw new Error('tensor read failed');
    }
    expect(() => writeFileAtomicSync(file, failing())).toThrow('tensor read failed');
    expect(readFileSync(file, 'utf8')).toBe('previous');
    expect(leftovers(dir)).toEqual([]);
  });
});

describe('writeDirAtomic', () => {
  const fill = (text: string) => async (tmp: string) => {
    writeFileSync(join(tmp, 'f.txt'), text);
    return text.length;
  };

  it('builds the directory beside the target and moves it in; returns what fill returned', async () => {
    const dir = fresh();
    const target = join(dir, 'nested', 'model');
    expect(await writeDirAtomic(target, fill('v1'))).toBe(2);
    expect(readFileSync(join(target, 'f.txt'), 'utf8')).toBe('v1');
    expect(leftovers(join(dir, 'nested'))).toEqual([]);
  });

  it('without overwrite an existing target is kept and the attempt cleaned up', async () => {
    const dir = fresh();
    const target = join(dir, 'model');
    await writeDirAtomic(target, fill('v1'));
    await expect(writeDirAtomic(target, fill('v2'))).rejects.toThrow(/ENOTEMPTY|EEXIST/);
    expect(readFileSync(join(target, 'f.txt'), 'utf8')).toBe('v1');
    expect(leftovers(dir)).toEqual([]);
  });

  it('with overwrite the new directory replaces the old one, and nothing is left beside it', async () => {
    const dir = fresh();
    const target = join(dir, 'model');
    await writeDirAtomic(target, fill('v1'));
    writeFileSync(join(target, 'stale.txt'), 'only in v1');
    await writeDirAtomic(target, fill('v2'), { overwrite: true });
    expect(readdirSync(target)).toEqual(['f.txt']);
    expect(readFileSync(join(target, 'f.txt'), 'utf8')).toBe('v2');
    expect(leftovers(dir)).toEqual([]);
  });

  it('a failing fill leaves the previous directory untouched and no temporary directory', async () => {
    const dir = fresh();
    const target = join(dir, 'model');
    await writeDirAtomic(target, fill('v1'));
    await expect(
      writeDirAtomic(
        target,
        async (tmp) => {
          writeFileSync(join(tmp, 'f.txt'), 'half');
          throw new Error('disk full');
        },
        { overwrite: true },
      ),
    ).rejects.toThrow('disk full');
    expect(readFileSync(join(target, 'f.txt'), 'utf8')).toBe('v1');
    expect(leftovers(dir)).toEqual([]);
  });
});

const HALF = 1 << 20;

/**
 * A child process writes version 1 completely, then starts version 2 and stops half-way (it tells the parent, then
 * blocks), and is killed with SIGKILL there: the kill lands mid-write by construction, not by timing luck.
 */
async function killMidWrite(target: string, mode: 'file' | 'dir'): Promise<void> {
  const half = "process.stdout.write('half\\n'); Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);";
  const script =
    mode === 'file'
      ? `import { writeFileAtomicSync } from ${JSON.stringify(resolve(import.meta.dirname, '../../src/util/atomic.ts'))};
         const t = ${JSON.stringify(target)};
         writeFileAtomicSync(t, [new Uint8Array(${HALF * 2}).fill(1)]);
         writeFileAtomicSync(t, (function* () { yield new Uint8Array(${HALF}).fill(2); ${half} yield new Uint8Array(${HALF}).fill(2); })());`
      : `import { writeFileSync } from 'node:fs';
         import { writeDirAtomic } from ${JSON.stringify(resolve(import.meta.dirname, '../../src/util/atomic.ts'))};
         const t = ${JSON.stringify(target)};
         await writeDirAtomic(t, async (d) => { writeFileSync(d + '/a', 'v1'); writeFileSync(d + '/b', 'v1'); });
         await writeDirAtomic(t, async (d) => { writeFileSync(d + '/a', 'v2'); ${half} writeFileSync(d + '/b', 'v2'); }, { overwrite: true });`;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((done, fail) => {
    child.once('error', fail);
    child.once('exit', (code) => fail(new Error(`child exited before the kill (${code})`)));
    child.stdout.on('data', (b: Buffer) => b.toString().includes('half') && done());
  });
  child.removeAllListeners('exit');
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGKILL');
  await exited;
}

describe('SIGKILL in the middle of a write (a real child process)', () => {
  it('a file keeps its previous complete version; only a hidden temporary sibling is left', async () => {
    const dir = fresh();
    const file = join(dir, 'checkpoint.bin');
    await killMidWrite(file, 'file');
    const got = readFileSync(file);
    expect(got.length).toBe(HALF * 2);
    expect(got.every((b) => b === 1)).toBe(true);
    const [tmp, ...more] = leftovers(dir);
    expect(more).toEqual([]);
    expect(readFileSync(join(dir, tmp)).length).toBe(HALF); // the kill did land mid-write
  });

  it('a directory keeps its previous complete content', async () => {
    const dir = fresh();
    const target = join(dir, 'model');
    await killMidWrite(target, 'dir');
    expect(readdirSync(target).sort()).toEqual(['a', 'b']);
    expect(readFileSync(join(target, 'a'), 'utf8')).toBe('v1');
    expect(readFileSync(join(target, 'b'), 'utf8')).toBe('v1');
    expect(leftovers(dir).length).toBe(1); // the half-built temporary directory
  });
});
