/**
 * API keys and scopes.
 *
 * Keys come from MANYFOLD_API_KEYS as `key=scope+scope,key2=scope` (scopes: search, write, probe, admin; admin
 * implies every other scope). Only sha256 hashes of the keys are kept (in memory, and in <data>/keys.json for a
 * key the Node server generated: src/node/keys.ts); a presented bearer token is hashed and compared with every stored hash using
 * crypto.timingSafeEqual, without an early exit, so the comparison time does not depend on which key matched.
 * The key id used in logs, metrics and rate limiting is the first 8 hex digits of the hash, never the key.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
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

export function keyEntry(hash: Buffer, scopes: Iterable<Scope>): ApiKeyEntry {
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
    out.push(keyEntry(hashKey(key), scopes as Scope[]));
  });
  if (out.length === 0) throw new Error('MANYFOLD_API_KEYS is set but holds no key');
  return out;
}

/**
 * The keys of a runtime that cannot generate one (the edge: there is nowhere to print it once, nowhere to keep its
 * hash): MANYFOLD_API_KEYS (config auth.keys) or a clear error. Node's server may generate one (src/node/keys.ts).
 */
export function configuredApiKeys(spec: string | undefined, runtime: string): ApiKeyEntry[] {
  if (!spec || !spec.trim()) throw new Error(`MANYFOLD_API_KEYS is not set: ${runtime} need configured keys (key=scope+scope,...)`);
  return parseApiKeys(spec);
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
