/**
 * BucketLike: the object-store subset Manyfold's edge/cloud code needs (get/put/delete/list by key prefix).
 * Cloudflare's R2Bucket satisfies it as is; MemoryBucket (tests, small deployments) implements it here, DirBucket
 * (src/node/dir-bucket.ts: local runs of the Lambda handler and the SQS consumer) on a directory, and S3Bucket
 * (src/aws/s3-bucket.ts) over the AWS SDK.
 * Object stores with read-after-write consistency (R2, S3, a directory) are assumed.
 */
export interface BucketObject {
  arrayBuffer(): Promise<ArrayBuffer>;
  text(): Promise<string>;
}

export interface BucketListResult {
  objects: { key: string }[];
  truncated: boolean;
  cursor?: string;
}

export interface BucketLike {
  get(key: string): Promise<BucketObject | null>;
  put(key: string, value: ArrayBuffer | ArrayBufferView | string): Promise<unknown>;
  delete(keys: string | string[]): Promise<void>;
  list(options?: { prefix?: string; cursor?: string; limit?: number }): Promise<BucketListResult>;
}

function toBytes(v: ArrayBuffer | ArrayBufferView | string): Uint8Array {
  if (typeof v === 'string') return new TextEncoder().encode(v);
  if (v instanceof ArrayBuffer) return new Uint8Array(v.slice(0));
  return new Uint8Array(v.buffer.slice(v.byteOffset, v.byteOffset + v.byteLength) as ArrayBuffer);
}

function obj(bytes: Uint8Array): BucketObject {
  return {
    arrayBuffer: async () => bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer,
    text: async () => new TextDecoder().decode(bytes),
  };
}

export class MemoryBucket implements BucketLike {
  readonly objects = new Map<string, Uint8Array>();

  async get(key: string): Promise<BucketObject | null> {
    const b = this.objects.get(key);
    return b ? obj(b) : null;
  }
  async put(key: string, value: ArrayBuffer | ArrayBufferView | string): Promise<void> {
    this.objects.set(key, toBytes(value));
  }
  async delete(keys: string | string[]): Promise<void> {
    for (const k of Array.isArray(keys) ? keys : [keys]) this.objects.delete(k);
  }
  async list(options: { prefix?: string; cursor?: string; limit?: number } = {}): Promise<BucketListResult> {
    const prefix = options.prefix ?? '';
    const limit = options.limit ?? 1000;
    const all = [...this.objects.keys()].filter((k) => k.startsWith(prefix) && (options.cursor === undefined || k > options.cursor)).sort();
    const page = all.slice(0, limit);
    const truncated = all.length > limit;
    return { objects: page.map((key) => ({ key })), truncated, ...(truncated ? { cursor: page[page.length - 1] } : {}) };
  }
}

/** Every key under a prefix (follows list cursors). */
export async function listAll(bucket: BucketLike, prefix: string): Promise<string[]> {
  const out: string[] = [];
  let cursor: string | undefined;
  for (;;) {
    const r = await bucket.list({ prefix, ...(cursor ? { cursor } : {}) });
    for (const o of r.objects) out.push(o.key);
    if (!r.truncated || !r.cursor) break;
    cursor = r.cursor;
  }
  return out;
}

export async function getJson<T>(bucket: BucketLike, key: string): Promise<T | undefined> {
  const o = await bucket.get(key);
  return o ? (JSON.parse(await o.text()) as T) : undefined;
}

export async function putJson(bucket: BucketLike, key: string, value: unknown): Promise<void> {
  await bucket.put(key, JSON.stringify(value));
}
