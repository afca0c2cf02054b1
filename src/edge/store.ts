/**
 * BucketStore: the API's Store (src/api/store.ts: items, blobs, state, jobs, probes) over a BucketLike object
 * store, for runtimes without a persistent filesystem (Workers: R2 or memory; Lambda: S3).
 *
 * Keys: items/<ns>/<hex(id)>.json, blobs/<sha256>, state.json, jobs/<id>.json, probes/<id>.json (+ .html).
 * hex(id) keeps keys path-safe and gives a stable sorted order (activation checkpoints compare keys).
 */
import type { Metadata } from '../index/types.js';
import { readAllItems, type ServerState, type Store, type StoredItem } from '../api/store.js';
import { getJson, listAll, putJson, type BucketLike } from './bucket.js';

export { type Metadata };

export function hexKey(id: string): string {
  let s = '';
  for (const b of new TextEncoder().encode(id)) s += b.toString(16).padStart(2, '0');
  return s;
}

export class BucketStore implements Store {
  constructor(readonly bucket: BucketLike) {}

  private itemKey(ns: string, id: string): string {
    return `items/${ns}/${hexKey(id)}.json`;
  }

  getItem(ns: string, id: string): Promise<StoredItem | undefined> {
    return getJson<StoredItem>(this.bucket, this.itemKey(ns, id));
  }
  putItem(item: StoredItem): Promise<void> {
    return putJson(this.bucket, this.itemKey(item.namespace, item.id), item);
  }
  async deleteItem(ns: string, id: string): Promise<boolean> {
    const k = this.itemKey(ns, id);
    if (!(await this.bucket.get(k))) return false;
    await this.bucket.delete(k);
    return true;
  }
  async namespaces(): Promise<string[]> {
    const keys = await listAll(this.bucket, 'items/');
    return [...new Set(keys.map((k) => k.split('/')[1]).filter(Boolean))].sort();
  }
  async itemKeys(ns: string): Promise<string[]> {
    return (await listAll(this.bucket, `items/${ns}/`)).map((k) => k.slice(`items/${ns}/`.length)).sort();
  }
  readItemByKey(ns: string, key: string): Promise<StoredItem | undefined> {
    return getJson<StoredItem>(this.bucket, `items/${ns}/${key}`);
  }
  listItems(ns: string): Promise<StoredItem[]> {
    return readAllItems(this, ns);
  }
  async putBlob(sha: string, bytes: Uint8Array): Promise<void> {
    if (await this.bucket.get(`blobs/${sha}`)) return;
    await this.bucket.put(`blobs/${sha}`, bytes);
  }
  async getBlob(sha: string): Promise<Buffer> {
    if (!/^[0-9a-f]{64}$/.test(sha)) throw new Error('bad blob id');
    const o = await this.bucket.get(`blobs/${sha}`);
    if (!o) throw new Error(`blob ${sha} not found`);
    return Buffer.from(await o.arrayBuffer());
  }
  async getState(): Promise<ServerState> {
    return (await getJson<ServerState>(this.bucket, 'state.json')) ?? {};
  }
  putState(s: ServerState): Promise<void> {
    return putJson(this.bucket, 'state.json', s);
  }
  private docKey(kind: 'jobs' | 'probes', id: string, ext = 'json'): string {
    if (!/^[A-Za-z0-9_-]{1,80}$/.test(id)) throw new Error('bad document id');
    return `${kind}/${id}.${ext}`;
  }
  getDoc<T>(kind: 'jobs' | 'probes', id: string): Promise<T | undefined> {
    return getJson<T>(this.bucket, this.docKey(kind, id));
  }
  putDoc(kind: 'jobs' | 'probes', id: string, doc: unknown): Promise<void> {
    return putJson(this.bucket, this.docKey(kind, id), doc);
  }
  async putText(kind: 'jobs' | 'probes', id: string, ext: string, text: string): Promise<void> {
    await this.bucket.put(this.docKey(kind, id, ext), text);
  }
  async getText(kind: 'jobs' | 'probes', id: string, ext: string): Promise<string | undefined> {
    const o = await this.bucket.get(this.docKey(kind, id, ext));
    return o ? o.text() : undefined;
  }
  async deleteDoc(kind: 'jobs' | 'probes', id: string): Promise<void> {
    await this.bucket.delete([this.docKey(kind, id), this.docKey(kind, id, 'html')]);
  }
  async listDocs<T>(kind: 'jobs' | 'probes'): Promise<T[]> {
    const out: T[] = [];
    for (const k of (await listAll(this.bucket, `${kind}/`)).filter((k) => k.endsWith('.json')).sort()) {
      const d = await getJson<T>(this.bucket, k);
      if (d) out.push(d);
    }
    return out;
  }
}
