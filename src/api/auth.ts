/**
 * API keys and scopes.
 *
 * Keys come from MANYFOLD_API_KEYS as `key=scope+scope,key2=scope` (scopes: search, write, probe, admin; admin
 * implies every other scope). Only sha256 hashes of the keys are kept (in memory, and in <data>/keys.json for a
 * generated key); a presented bearer token is hashed and compared with every stored hash using
 * crypto.timingSafeEqual, without an early exit, so the comparison time does not depend on which key matched.
 * The key id used in logs, metrics and rate limiting is the first 8 hex digits of the hash, never the key.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { ApiError } from './errors.js';

export const SCOPES = ['search', 'write', 'probe', 'admin'] as const;
export type Scope = (typeof SCOPES)[number];

export interface ApiKeyEntry {
  /** sha256 of the key */
  hash: Buffer;
  /** short public id (hash prefix) for logs and rate limiting */
  id: string;
  scopes: ReadonlySet<Scope>;
}

export function hashKey(key: string): Buffer {
  return createHash('sha256').update(key, 'utf8').digest();
}

function entry(hash: Buffer, scopes: Iterable<Scope>): ApiKeyEntry {
  return { hash, id: hash.toString('hex').slice(0, 8), scopes: new Set(scopes) };
}

/** Parses `key=scope+scope,key2=scope`; throws with the offending part (never echoing a key). */
export function parseApiKeys(spec: string): ApiKeyEntry[] {
  const out: ApiKeyEntry[] = [];
  const parts = spec.split(',').map((p) => p.trim()).filter(Boolean);
  parts.forEach((part, i) => {
    const eq = part.lastIndexOf('=');
    if (eq <= 0 || eq === part.length - 1) throw new Error(`MANYFOLD_API_KEYS entry ${i + 1}: expected key=scope+scope`);
    const key = part.slice(0, eq);
    if (key.length < 8) throw new Error(`MANYFOLD_API_KEYS entry ${i + 1}: keys must be at least 8 characters`);
    const scopes = part.slice(eq + 1).split('+').map((s) => s.trim());
    for (const s of scopes) {
      if (!(SCOPES as readonly string[]).includes(s)) throw new Error(`MANYFOLD_API_KEYS entry ${i + 1}: unknown scope "${s}" (expected ${SCOPES.join(', ')})`);
    }
    out.push(entry(hashKey(key), scopes as Scope[]));
  });
  if (out.length === 0) throw new Error('MANYFOLD_API_KEYS is set but holds no key');
  return out;
}

export function generateKey(): string {
  return `mf_${randomBytes(24).toString('base64url')}`;
}

/**
 * The key set of a server: from the spec when given; otherwise the admin key generated on a first start (its
 * hash is kept in `keysFile`); on a first start `generated` carries the plaintext key to print once.
 */
export function resolveApiKeys(spec: string | undefined, keysFile: string): { keys: ApiKeyEntry[]; generated?: string; source: string } {
  if (spec && spec.trim()) return { keys: parseApiKeys(spec), source: 'MANYFOLD_API_KEYS' };
  if (existsSync(keysFile)) {
    const json = JSON.parse(readFileSync(keysFile, 'utf8')) as { keys: { sha256: string; scopes: Scope[] }[] };
    return { keys: json.keys.map((k) => entry(Buffer.from(k.sha256, 'hex'), k.scopes)), source: keysFile };
  }
  const key = generateKey();
  mkdirSync(dirname(keysFile), { recursive: true });
  writeFileSync(keysFile, `${JSON.stringify({ keys: [{ sha256: hashKey(key).toString('hex'), scopes: ['admin'] }] }, null, 2)}\n`, { mode: 0o600 });
  return { keys: [entry(hashKey(key), ['admin'])], generated: key, source: 'generated' };
}

export class KeyRing {
  constructor(private readonly keys: readonly ApiKeyEntry[]) {}

  /** Constant-time lookup: every stored hash is compared. */
  find(token: string): ApiKeyEntry | undefined {
    const h = hashKey(token);
    let found: ApiKeyEntry | undefined;
    for (const k of this.keys) {
      if (timingSafeEqual(h, k.hash) && !found) found = k;
    }
    return found;
  }

  /** Authorization header -> key entry, or ApiError 401. */
  authenticate(header: string | undefined): ApiKeyEntry {
    const m = header ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null;
    if (!m) throw new ApiError(401, 'unauthorized', 'missing bearer token: send Authorization: Bearer <key>', undefined, { 'WWW-Authenticate': 'Bearer' });
    const k = this.find(m[1]);
    if (!k) throw new ApiError(401, 'unauthorized', 'invalid API key', undefined, { 'WWW-Authenticate': 'Bearer error="invalid_token"' });
    return k;
  }
}

export function hasScope(key: ApiKeyEntry, scope: Scope): boolean {
  return key.scopes.has('admin') || key.scopes.has(scope);
}

export function requireScope(key: ApiKeyEntry, ...anyOf: Scope[]): void {
  if (!anyOf.some((s) => hasScope(key, s))) {
    throw new ApiError(403, 'forbidden', `this key lacks the ${anyOf.join(' or ')} scope`);
  }
}
