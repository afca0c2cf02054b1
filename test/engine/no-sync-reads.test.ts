/**
 * Guard: no synchronous tensor read (dataSync / arraySync / bufferSync) creeps back into the library or the
 * training code. Dawn, the webgpu backend in Node, maps GPU buffers asynchronously only, so such a read throws
 * there (webgpu.ts) and `auto` now picks webgpu on a GPU machine. Read with `await t.data()` (src/engine/read.ts).
 * The few synchronous reads that remain are listed with the reason each one is safe on every backend.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '..', '..');

/** file -> why its synchronous reads are safe on webgpu (each must still hold one, or the entry is stale) */
const ALLOWED: Record<string, string> = {
  'training/checkpoint.ts': 'the writer is a synchronous atomic file write: its second pass reads the host copy webgpu keeps after the first pass`s await data()',
  'src/attacks/transformations/jpeg.ts': 'customGrad forwards are synchronous: pgdSearch downloads x (await data()) before each call when the transform readsHostPixels',
};

const SYNC_READ = /\.(dataSync|arraySync|bufferSync)\s*\(/;

/** the source without comments and string/template literals (mentions in docs and error messages are fine) */
function code(src: string): string {
  return src.replace(/\/\*[\s\S]*?\*\/|\/\/[^\n]*|'(?:\\.|[^'\\\n])*'|"(?:\\.|[^"\\\n])*"|`(?:\\.|[^`\\])*`/g, (m) => m.replace(/[^\n]/g, ' '));
}

function tsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    if (e.isDirectory()) return e.name === 'vendor' || e.name === 'node_modules' ? [] : tsFiles(p);
    return e.name.endsWith('.ts') && !e.name.endsWith('.d.ts') ? [p] : [];
  });
}

describe('no synchronous GPU reads in src/ and training/', () => {
  const files = [...tsFiles(join(ROOT, 'src')), ...tsFiles(join(ROOT, 'training'))];

  it('finds the sources (the scan is not vacuous)', () => {
    expect(files.length).toBeGreaterThan(100);
    // the scanner sees a real call and ignores comments and strings
    expect(code("x.dataSync(); // y.dataSync()\nconst s = 'z.arraySync()';").match(new RegExp(SYNC_READ, 'g'))).toHaveLength(1);
  });

  it('every dataSync / arraySync / bufferSync is in an allow-listed file', () => {
    const offenders: string[] = [];
    const used = new Set<string>();
    for (const f of files) {
      const rel = relative(ROOT, f).split('\\').join('/');
      const lines = code(readFileSync(f, 'utf8')).split('\n');
      lines.forEach((line, i) => {
        if (!SYNC_READ.test(line)) return;
        if (rel in ALLOWED) used.add(rel);
        else offenders.push(`${rel}:${i + 1}: ${line.trim()}`);
      });
    }
    expect(offenders, 'synchronous reads fail on webgpu in Node: use `await t.data()` (src/engine/read.ts takeData)').toEqual([]);
    expect([...used].sort(), 'an allow-list entry without a synchronous read is stale: remove it').toEqual(Object.keys(ALLOWED).sort());
  });
});
