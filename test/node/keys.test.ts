import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { configuredApiKeys, KeyRing } from '../../src/api/auth.js';
import { resolveApiKeys } from '../../src/node/keys.js';

let dir: string;
beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'mf-keys-'))));
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('keys of the Node server (src/node/keys.ts) and of the edge (configuredApiKeys)', () => {
  it('generates an admin key once, keeps only its hash (mode 0600), and accepts it on the next start', () => {
    const file = join(dir, 'data', 'keys.json');
    const first = resolveApiKeys(undefined, file);
    expect(first.source).toBe('generated');
    expect(first.generated).toMatch(/^mf_[A-Za-z0-9_-]{32}$/);
    expect(readFileSync(file, 'utf8')).not.toContain(first.generated!);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const second = resolveApiKeys('', file);
    expect(second.source).toBe(file);
    expect(second.generated).toBeUndefined();
    expect(new KeyRing(second.keys).find(first.generated!)?.scopes.has('admin')).toBe(true);
    expect(new KeyRing(second.keys).find('mf_not-the-key')).toBeUndefined();
  });

  it('MANYFOLD_API_KEYS wins over the file', () => {
    const file = join(dir, 'keys.json');
    resolveApiKeys(undefined, file);
    const r = resolveApiKeys('search-key-123=search', file);
    expect(r.source).toBe('MANYFOLD_API_KEYS');
    expect([...r.keys[0].scopes]).toEqual(['search']);
  });

  it('a damaged keys file is refused by name, with the field, never silently replaced', () => {
    const file = join(dir, 'keys.json');
    writeFileSync(file, '{"keys": [');
    expect(() => resolveApiKeys(undefined, file)).toThrow(new RegExp(`${file}: not JSON`));
    writeFileSync(file, JSON.stringify({ keys: [{ sha256: 'abc', scopes: ['admin'] }] }));
    expect(() => resolveApiKeys(undefined, file)).toThrow(/keys\.0\.sha256/);
    writeFileSync(file, JSON.stringify({ keys: [{ sha256: 'a'.repeat(64), scopes: ['root'] }] }));
    expect(() => resolveApiKeys(undefined, file)).toThrow(/keys\.0\.scopes\.0/);
    expect(readFileSync(file, 'utf8')).toContain('root'); // left as it was
  });

  it('the edge takes configured keys only, and says which variable to set', () => {
    expect(() => configuredApiKeys(undefined, 'the edge runtimes')).toThrow(/MANYFOLD_API_KEYS is not set: the edge runtimes need configured keys/);
    expect(() => configuredApiKeys('  ', 'the edge runtimes')).toThrow(/MANYFOLD_API_KEYS is not set/);
    expect(configuredApiKeys('probe-key-1234=probe+search', 'x')[0].scopes).toEqual(new Set(['probe', 'search']));
  });
});
