/**
 * Publishing a model artifact to object storage (S3, or R2 through its S3 endpoint): `manyfold publish` and the
 * nightly job's publish step.
 *
 *   1. the local artifact is verified (every file's size and sha256 against its manifest)
 *   2. each file goes to <prefix>/<id>/<file> (the id is the content id): a key that exists already is never
 *      overwritten: its content is re-read and must have the manifest's sha256 (else the publish stops, naming the
 *      key); a new key is written with If-None-Match: * (a concurrent writer loses with 412 where the server
 *      supports it) and re-read and hashed after the upload
 *   3. the artifact's manifest.json, the same way, once all its files are there
 *   4. the catalogue (<prefix>/catalog.json, see src/edge/bucket-catalog.ts) last, in one PUT (If-Match on the
 *      version read, retried on conflict), then re-read
 * A crash (kill -9) anywhere before step 4 leaves the catalogue as it was: readers never see the new model, and
 * the objects already uploaded are found, verified and kept by the rerun, which completes the publish.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ArtifactError, MANIFEST_FILE, manifestSchema, verifyArtifact, type ArtifactManifest } from '../model/artifact.js';
import { artifactKey, catalogKey, CATALOG_FORMAT, parseCatalog, type Catalog, type CatalogEntry } from '../edge/bucket-catalog.js';
import { S3Bucket, StorageError, type PutCondition, type S3Location } from '../aws/s3-bucket.js';
import { destinationUrl, parseDestination, type PublishDestination } from './destination.js';

/** what publishing needs from a bucket (S3Bucket; tests may wrap it) */
export interface PublishStore {
  url(key?: string): string;
  checkBucket(): Promise<void>;
  head(key: string): Promise<{ bytes: number } | null>;
  hash(key: string): Promise<{ bytes: number; sha256: string } | null>;
  get(key: string): Promise<{ text(): Promise<string>; etag?: string } | null>;
  put(key: string, value: Uint8Array | string, cond?: PutCondition): Promise<unknown>;
}

export interface PublishOptions extends Omit<S3Location, 'bucket'> {
  /** files uploaded at the same time (default 4) */
  concurrency?: number;
  /** make this model the catalogue's default (default: only when the catalogue has none yet) */
  makeDefault?: boolean;
  log?: (line: string) => void;
  /** the bucket to write to, instead of an S3 client built from endpoint/region */
  store?: PublishStore;
}

export interface PublishedObject {
  key: string;
  bytes: number;
  /** uploaded now, or found already published with the expected sha256 (kept, never overwritten) */
  action: 'uploaded' | 'present';
}

export interface PublishResult {
  id: string;
  /** s3://bucket/prefix/<id>/ */
  url: string;
  objects: PublishedObject[];
  uploaded: { objects: number; bytes: number };
  catalog: { url: string; changed: boolean; models: number; default?: string };
  ms: number;
}

/** the bucket holds something else under a key this publish owns: never overwritten */
export class PublishConflictError extends Error {
  override name = 'PublishConflictError';
}

const sha256 = (b: Uint8Array | string): string => createHash('sha256').update(b).digest('hex');

export async function publishArtifact(dir: string, dest: string | PublishDestination, opts: PublishOptions = {}): Promise<PublishResult> {
  const t0 = performance.now();
  const d = typeof dest === 'string' ? parseDestination(dest) : dest;
  const log = opts.log ?? (() => undefined);
  const store: PublishStore = opts.store ?? new S3Bucket({ bucket: d.bucket, ...(opts.endpoint ? { endpoint: opts.endpoint } : {}), ...(opts.region ? { region: opts.region } : {}) });

  const manifest = await verifyArtifact(dir);
  await store.checkBucket();
  const objects: PublishedObject[] = [];

  // 2. the files, a few at a time
  const queue = [...manifest.files];
  const worker = async (): Promise<void> => {
    for (let f = queue.shift(); f; f = queue.shift()) {
      const bytes = await readFile(join(dir, f.path));
      if (bytes.length !== f.bytes || sha256(bytes) !== f.sha256) throw new ArtifactError(`${join(dir, f.path)} changed since it was verified`, f.path);
      const key = artifactKey(d.prefix, manifest.id, f.path);
      const action = await putOnce(store, key, bytes, { bytes: f.bytes, sha256: f.sha256 });
      objects.push({ key, bytes: f.bytes, action });
      log(`${action === 'uploaded' ? 'uploaded' : 'present '} ${store.url(key)} (${f.bytes} bytes)`);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(opts.concurrency ?? 4, queue.length)) }, worker));

  // 3. the manifest, once every file it lists is in place
  const manifestKey = artifactKey(d.prefix, manifest.id, MANIFEST_FILE);
  const localManifest = await readFile(join(dir, MANIFEST_FILE));
  const pinned = await putManifest(store, manifestKey, localManifest, manifest);
  objects.push({ key: manifestKey, bytes: pinned.bytes, action: pinned.action });
  log(`${pinned.action === 'uploaded' ? 'uploaded' : 'present '} ${store.url(manifestKey)} (${pinned.bytes} bytes)`);

  // 4. the catalogue, last
  const entry: CatalogEntry = {
    id: manifest.id,
    manifest: { bytes: pinned.bytes, sha256: pinned.sha256 },
    files: manifest.files.length,
    bytes: manifest.files.reduce((a, f) => a + f.bytes, 0),
    preset: manifest.config.preset,
    embedDim: manifest.config.embedDim,
    created: manifest.created,
    published: new Date().toISOString(),
  };
  const catalog = await addToCatalog(store, catalogKey(d.prefix), entry, Boolean(opts.makeDefault));
  log(`${catalog.changed ? 'updated' : 'unchanged'} ${catalog.url} (${catalog.models} models, default ${catalog.default ?? '-'})`);

  const up = objects.filter((o) => o.action === 'uploaded');
  return {
    id: manifest.id,
    url: `${destinationUrl(d)}${manifest.id}/`,
    objects,
    uploaded: { objects: up.length, bytes: up.reduce((a, o) => a + o.bytes, 0) },
    catalog,
    ms: Math.round(performance.now() - t0),
  };
}

/** Write a key that must end up holding exactly `expect`; an existing key is verified, never replaced. */
async function putOnce(store: PublishStore, key: string, bytes: Uint8Array, expect: { bytes: number; sha256: string }): Promise<PublishedObject['action']> {
  if (await store.head(key)) {
    await checkRemote(store, key, expect, 'exists with other content; refusing to overwrite it');
    return 'present';
  }
  try {
    await store.put(key, bytes, { ifAbsent: true });
  } catch (e) {
    if (!(e instanceof StorageError && e.problem === 'precondition')) throw e;
    // another publisher created it between our HEAD and PUT
    await checkRemote(store, key, expect, 'was written concurrently with other content');
    return 'present';
  }
  await checkRemote(store, key, expect, 'failed verification after upload');
  return 'uploaded';
}

async function checkRemote(store: PublishStore, key: string, expect: { bytes: number; sha256: string }, what: string): Promise<void> {
  const got = await store.hash(key);
  if (!got) throw new PublishConflictError(`${store.url(key)} is not readable right after it was written`);
  if (got.bytes !== expect.bytes || got.sha256 !== expect.sha256) {
    throw new PublishConflictError(`${store.url(key)} ${what} (${got.bytes} bytes, sha256 ${got.sha256}; expected ${expect.bytes} bytes, sha256 ${expect.sha256})`);
  }
}

/**
 * The manifest: uploaded like a file, except that a manifest already published for the same id may differ in
 * metadata (e.g. metrics added later): the same files and weights make it the same model, and the published one
 * stays (what the catalogue pins).
 */
async function putManifest(store: PublishStore, key: string, local: Uint8Array, manifest: ArtifactManifest): Promise<{ bytes: number; sha256: string; action: PublishedObject['action'] }> {
  const expect = { bytes: local.length, sha256: sha256(local) };
  try {
    return { ...expect, action: await putOnce(store, key, local, expect) };
  } catch (e) {
    if (!(e instanceof PublishConflictError)) throw e;
    const remote = await store.get(key);
    if (!remote) throw e;
    const text = await remote.text();
    const parsed = manifestSchema.safeParse(JSON.parse(text));
    const same = parsed.success && parsed.data.id === manifest.id && JSON.stringify(parsed.data.files) === JSON.stringify(manifest.files) && JSON.stringify(parsed.data.weights) === JSON.stringify(manifest.weights);
    if (!same) throw new PublishConflictError(`${store.url(key)} holds another artifact under id ${manifest.id}; refusing to overwrite it`);
    const bytes = new TextEncoder().encode(text);
    return { bytes: bytes.length, sha256: sha256(bytes), action: 'present' };
  }
}

const CATALOG_ATTEMPTS = 5;

/** Add (or confirm) one entry: read the catalogue, write the new version conditionally on the one read, re-read. */
async function addToCatalog(store: PublishStore, key: string, entry: CatalogEntry, makeDefault: boolean): Promise<PublishResult['catalog']> {
  const url = store.url(key);
  for (let attempt = 1; ; attempt++) {
    const cur = await store.get(key);
    const catalog: Catalog = cur ? parseCatalog(await cur.text(), url) : { format: CATALOG_FORMAT, updated: entry.published, models: [] };
    const listed = catalog.models.find((m) => m.id === entry.id);
    const nextDefault = makeDefault || !catalog.default ? entry.id : catalog.default;
    if (listed && listed.manifest.sha256 === entry.manifest.sha256 && nextDefault === catalog.default) {
      return { url, changed: false, models: catalog.models.length, ...(catalog.default ? { default: catalog.default } : {}) };
    }
    const next: Catalog = {
      format: CATALOG_FORMAT,
      updated: new Date().toISOString(),
      default: nextDefault,
      models: listed ? catalog.models.map((m) => (m.id === entry.id ? entry : m)) : [...catalog.models, entry],
    };
    const text = `${JSON.stringify(next, null, 2)}\n`;
    try {
      await store.put(key, text, cur?.etag ? { ifMatch: cur.etag } : { ifAbsent: true });
    } catch (e) {
      // someone else published in between: read their version and add to it
      if (e instanceof StorageError && e.problem === 'precondition' && attempt < CATALOG_ATTEMPTS) continue;
      throw e;
    }
    const back = await store.get(key);
    const reread = back ? parseCatalog(await back.text(), url) : undefined;
    if (!reread?.models.some((m) => m.id === entry.id && m.manifest.sha256 === entry.manifest.sha256)) {
      if (attempt < CATALOG_ATTEMPTS) continue; // a concurrent writer on a server without If-Match: add again
      throw new Error(`${url} does not list ${entry.id} after it was written`);
    }
    return { url, changed: true, models: reread.models.length, ...(reread.default ? { default: reread.default } : {}) };
  }
}
