/**
 * What the API persists besides the vector index: items, image blobs, the active-model state, and job / probe
 * documents. `Store` is the interface; each runtime implements it over its own storage:
 *   src/node/file-store.ts   FileStore, plain files under the data directory (manyfold serve, functions/node.ts)
 *   src/edge/store.ts        BucketStore, an object store (R2 in the Worker, S3 in Lambda, memory in tests)
 * The vector index is derived data: everything in it can be rebuilt from items + blobs with a model (that is
 * what activation does).
 */
import { createHash, randomBytes } from 'node:crypto';
import type { Metadata } from '../index/types.js';

export interface StoredImage {
  sha256: string;
  format: string;
  width: number;
  height: number;
  bytes: number;
}

export interface StoredItem {
  id: string;
  namespace: string;
  image?: StoredImage;
  captions: string[];
  metadata: Metadata;
  /** sha256 over image hash, captions and metadata: an identical re-upsert is a no-op */
  contentHash: string;
  updatedAt: string;
}

export interface ServerState {
  active?: string;
  previous?: string;
  switchedAt?: string;
}

export type DocKind = 'jobs' | 'probes';

export interface Store {
  getItem(ns: string, id: string): Promise<StoredItem | undefined>;
  putItem(item: StoredItem): Promise<void>;
  /** false when there was no such item */
  deleteItem(ns: string, id: string): Promise<boolean>;
  namespaces(): Promise<string[]>;
  /** a namespace's item keys, sorted (a stable order for checkpointed re-embedding) */
  itemKeys(ns: string): Promise<string[]>;
  readItemByKey(ns: string, key: string): Promise<StoredItem | undefined>;
  /** every item of a namespace (small and medium collections; activation streams by key instead) */
  listItems(ns: string): Promise<StoredItem[]>;
  /** content-addressed: a blob already stored is not written again */
  putBlob(sha: string, bytes: Uint8Array): Promise<void>;
  getBlob(sha: string): Promise<Buffer>;
  getState(): Promise<ServerState>;
  putState(s: ServerState): Promise<void>;
  getDoc<T>(kind: DocKind, id: string): Promise<T | undefined>;
  putDoc(kind: DocKind, id: string, doc: unknown): Promise<void>;
  putText(kind: DocKind, id: string, ext: string, text: string): Promise<void>;
  getText(kind: DocKind, id: string, ext: string): Promise<string | undefined>;
  /** the document and its HTML rendering */
  deleteDoc(kind: DocKind, id: string): Promise<void>;
  listDocs<T>(kind: DocKind): Promise<T[]>;
}

/** every item of a namespace through its keys: how each Store implements listItems */
export async function readAllItems(store: Pick<Store, 'itemKeys' | 'readItemByKey'>, ns: string): Promise<StoredItem[]> {
  const out: StoredItem[] = [];
  for (const k of await store.itemKeys(ns)) {
    const it = await store.readItemByKey(ns, k);
    if (it) out.push(it);
  }
  return out;
}

export function newId(prefix: string): string {
  return `${prefix}_${Date.now().toString(36)}${randomBytes(6).toString('hex')}`;
}

export function itemContentHash(imageSha: string | undefined, captions: readonly string[], metadata: Metadata): string {
  const keys = Object.keys(metadata).sort();
  const canon = JSON.stringify([imageSha ?? null, captions, keys.map((k) => [k, metadata[k]])]);
  return createHash('sha256').update(canon).digest('hex');
}
