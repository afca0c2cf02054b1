/**
 * FileStore: the API's Store (src/api/store.ts) under the data directory (plain files, each written atomically and flushed: src/util/atomic.ts):
 *
 *   <data>/items/<ns>/<sha256(id)[0:32]>.json   one item: id, captions, metadata, image reference, content hash
 *   <data>/blobs/<sha[0:2]>/<sha256>             image bytes, content-addressed (re-embedding needs them)
 *   <data>/state.json                            the active model (and the previous one, for rollback)
 *   <data>/jobs/<id>.json                        activation jobs (blue/green re-embedding) with their checkpoint
 *   <data>/probes/<id>.json                      probe jobs: request, status, progress, report
 *   <data>/keys.json                             sha256 of a generated admin key (see auth.ts)
 *
 * The vector index lives beside it (<data>/index for LanceDB) and is derived data: everything in it can be
 * rebuilt from items + blobs with a model (that is what activation does).
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { readAllItems, type ServerState, type Store, type StoredItem } from '../api/store.js';
import { writeFileAtomic, writeJsonAtomic } from '../util/atomic.js';

async function readJson<T>(file: string): Promise<T | undefined> {
  try {
    return JSON.parse(await readFile(file, 'utf8')) as T;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

export class FileStore implements Store {
  constructor(readonly dir: string) {}

  static async open(dir: string): Promise<FileStore> {
    for (const sub of ['items', 'blobs', 'jobs', 'probes']) await mkdir(join(dir, sub), { recursive: true });
    return new FileStore(dir);
  }

  get keysFile(): string {
    return join(this.dir, 'keys.json');
  }

  // ---------------------------------------------------------------- items
  private itemFile(ns: string, id: string): string {
    return join(this.dir, 'items', ns, `${createHash('sha256').update(id).digest('hex').slice(0, 32)}.json`);
  }

  getItem(ns: string, id: string): Promise<StoredItem | undefined> {
    return readJson<StoredItem>(this.itemFile(ns, id));
  }

  putItem(item: StoredItem): Promise<void> {
    return writeJsonAtomic(this.itemFile(item.namespace, item.id), item);
  }

  async deleteItem(ns: string, id: string): Promise<boolean> {
    const f = this.itemFile(ns, id);
    if (!existsSync(f)) return false;
    await rm(f, { force: true });
    return true;
  }

  async namespaces(): Promise<string[]> {
    try {
      return (await readdir(join(this.dir, 'items'))).filter((n) => !n.startsWith('.')).sort();
    } catch {
      return [];
    }
  }

  /** Item file names of a namespace, sorted (a stable order for checkpointed re-embedding). */
  async itemKeys(ns: string): Promise<string[]> {
    try {
      return (await readdir(join(this.dir, 'items', ns))).filter((n) => n.endsWith('.json')).sort();
    } catch {
      return [];
    }
  }

  readItemByKey(ns: string, key: string): Promise<StoredItem | undefined> {
    return readJson<StoredItem>(join(this.dir, 'items', ns, key));
  }

  /** Reads every item of a namespace (small and medium collections; activation streams by key instead). */
  listItems(ns: string): Promise<StoredItem[]> {
    return readAllItems(this, ns);
  }

  // ---------------------------------------------------------------- blobs
  private blobFile(sha: string): string {
    return join(this.dir, 'blobs', sha.slice(0, 2), sha);
  }

  async putBlob(sha: string, bytes: Uint8Array): Promise<void> {
    const f = this.blobFile(sha);
    if (existsSync(f)) return;
    await writeFileAtomic(f, bytes);
  }

  async getBlob(sha: string): Promise<Buffer> {
    if (!/^[0-9a-f]{64}$/.test(sha)) throw new Error('bad blob id');
    return readFile(this.blobFile(sha));
  }

  // ---------------------------------------------------------------- state
  async getState(): Promise<ServerState> {
    return (await readJson<ServerState>(join(this.dir, 'state.json'))) ?? {};
  }

  putState(s: ServerState): Promise<void> {
    return writeJsonAtomic(join(this.dir, 'state.json'), s);
  }

  // ---------------------------------------------------------------- jobs and probes (JSON documents by id)
  private docFile(kind: 'jobs' | 'probes', id: string, ext = 'json'): string {
    if (!/^[A-Za-z0-9_-]{1,80}$/.test(id)) throw new Error('bad document id');
    return join(this.dir, kind, `${id}.${ext}`);
  }

  getDoc<T>(kind: 'jobs' | 'probes', id: string): Promise<T | undefined> {
    return readJson<T>(this.docFile(kind, id));
  }

  putDoc(kind: 'jobs' | 'probes', id: string, doc: unknown): Promise<void> {
    return writeJsonAtomic(this.docFile(kind, id), doc);
  }

  async putText(kind: 'jobs' | 'probes', id: string, ext: string, text: string): Promise<void> {
    await writeFileAtomic(this.docFile(kind, id, ext), text);
  }

  async getText(kind: 'jobs' | 'probes', id: string, ext: string): Promise<string | undefined> {
    try {
      return await readFile(this.docFile(kind, id, ext), 'utf8');
    } catch {
      return undefined;
    }
  }

  async deleteDoc(kind: 'jobs' | 'probes', id: string): Promise<void> {
    await rm(this.docFile(kind, id), { force: true });
    await rm(this.docFile(kind, id, 'html'), { force: true });
  }

  async listDocs<T>(kind: 'jobs' | 'probes'): Promise<T[]> {
    const out: T[] = [];
    for (const f of (await readdir(join(this.dir, kind))).filter((n) => n.endsWith('.json')).sort()) {
      const d = await readJson<T>(join(this.dir, kind, f));
      if (d) out.push(d);
    }
    return out;
  }
}
