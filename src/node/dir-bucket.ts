/** DirBucket: a BucketLike over a local directory (Node only): local runs of the Lambda handler and SQS consumer. */
import { readdir, readFile, rm } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import { writeFileAtomic } from '../util/atomic.js';
import type { BucketLike, BucketListResult, BucketObject } from '../edge/bucket.js';

export class DirBucket implements BucketLike {
  constructor(readonly dir: string) {}

  private file(key: string): string {
    if (key.split('/').some((p) => p === '..' || p === '')) throw new Error(`bad key ${key}`);
    return join(this.dir, ...key.split('/'));
  }
  async get(key: string): Promise<BucketObject | null> {
    try {
      const b = await readFile(this.file(key));
      return { arrayBuffer: async () => b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer, text: async () => b.toString('utf8') };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw e;
    }
  }
  async put(key: string, value: ArrayBuffer | ArrayBufferView | string): Promise<void> {
    const data = typeof value === 'string' ? value : value instanceof ArrayBuffer ? new Uint8Array(value) : new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
    // durable like an acknowledged object-store put
    await writeFileAtomic(this.file(key), data);
  }
  async delete(keys: string | string[]): Promise<void> {
    for (const k of Array.isArray(keys) ? keys : [keys]) await rm(this.file(k), { force: true });
  }
  async list(options: { prefix?: string; cursor?: string; limit?: number } = {}): Promise<BucketListResult> {
    const prefix = options.prefix ?? '';
    const all: string[] = [];
    const walk = async (d: string): Promise<void> => {
      let ents;
      try {
        ents = await readdir(d, { withFileTypes: true });
      } catch {
        return;
      }
      for (const e of ents) {
        const p = join(d, e.name);
        if (e.isDirectory()) await walk(p);
        else if (!e.name.endsWith('.tmp')) all.push(relative(this.dir, p).split(sep).join('/'));
      }
    };
    await walk(this.dir);
    const keys = all.filter((k) => k.startsWith(prefix) && (options.cursor === undefined || k > options.cursor)).sort();
    const limit = options.limit ?? 1000;
    const page = keys.slice(0, limit);
    const truncated = keys.length > limit;
    return { objects: page.map((key) => ({ key })), truncated, ...(truncated ? { cursor: page[page.length - 1] } : {}) };
  }
}
