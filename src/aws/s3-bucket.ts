/**
 * S3Bucket: a BucketLike over any S3 API (AWS S3, Cloudflare R2's S3 endpoint, MinIO, s3rver) with the official
 * AWS SDK v3, plus what publishing needs on top: HEAD, conditional PUT (If-None-Match / If-Match where the
 * server honours them) and a streamed sha256 of an object. Credentials and region come from the SDK's standard
 * chain (AWS_ACCESS_KEY_ID / AWS_PROFILE / ~/.aws / instance roles; AWS_REGION); an explicit endpoint (R2, a
 * local server) switches to path-style addressing and to checksums only where required (third-party S3 servers
 * reject the SDK's default trailing checksums). Every failure becomes a StorageError naming the bucket and key.
 */
import { createHash } from 'node:crypto';
import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';
import type { BucketLike, BucketListResult, BucketObject } from '../edge/bucket.js';

export interface S3Location {
  bucket: string;
  /** endpoint URL of a non-AWS S3 API (R2: https://<account>.r2.cloudflarestorage.com; s3rver: http://127.0.0.1:4568) */
  endpoint?: string;
  /** default: the SDK's chain (AWS_REGION, profile); 'us-east-1' with an explicit endpoint and nothing set */
  region?: string;
}

export type StorageProblem = 'no-bucket' | 'access-denied' | 'credentials' | 'network' | 'precondition' | 'other';

/** A storage failure, with the object (s3://bucket/key) it concerns and a kind callers can branch on. */
export class StorageError extends Error {
  constructor(
    message: string,
    readonly problem: StorageProblem,
    readonly url: string,
    override readonly cause?: unknown,
  ) {
    super(message);
    this.name = 'StorageError';
  }
}

interface SdkError {
  name?: string;
  code?: string;
  message?: string;
  $metadata?: { httpStatusCode?: number };
}

const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH']);

/** An SDK error -> StorageError that says what went wrong with which object, and what to check. */
export function storageError(e: unknown, url: string, op: string): StorageError {
  if (e instanceof StorageError) return e;
  const err = (e ?? {}) as SdkError;
  const status = err.$metadata?.httpStatusCode;
  const name = err.name ?? '';
  const code = err.code ?? (err as { cause?: { code?: string } }).cause?.code ?? '';
  const detail = err.message ? `: ${err.message}` : '';
  if (name === 'NoSuchBucket') return new StorageError(`${op} ${url}: the bucket does not exist${detail}`, 'no-bucket', url, e);
  if (name === 'PreconditionFailed' || name === 'ConditionalRequestConflict' || status === 412) {
    return new StorageError(`${op} ${url}: precondition failed (the object changed or already exists)`, 'precondition', url, e);
  }
  if (name === 'CredentialsProviderError' || name === 'InvalidAccessKeyId' || name === 'SignatureDoesNotMatch' || name === 'ExpiredToken') {
    return new StorageError(
      `${op} ${url}: AWS credentials missing or rejected (${name}${detail}); set AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY or AWS_PROFILE`,
      'credentials',
      url,
      e,
    );
  }
  if (name === 'AccessDenied' || status === 403) {
    // a HEAD's 403 has no body (the SDK names it UnknownError): say what to check instead
    const why = name && name !== 'UnknownError' && name !== 'Forbidden' ? ` (${name}${detail})` : ' (HTTP 403)';
    return new StorageError(`${op} ${url}: access denied${why}: check the credentials (AWS_ACCESS_KEY_ID / AWS_PROFILE) and their permissions on this bucket`, 'access-denied', url, e);
  }
  if (NETWORK_CODES.has(code) || name === 'TimeoutError' || NETWORK_CODES.has(name)) {
    return new StorageError(`${op} ${url}: cannot reach the storage endpoint (${code || name})${detail}`, 'network', url, e);
  }
  if (/region is missing/i.test(err.message ?? '')) return new StorageError(`${op} ${url}: no AWS region configured: pass --region or set AWS_REGION`, 'credentials', url, e);
  return new StorageError(`${op} ${url} failed (${name || 'error'}${status ? `, HTTP ${status}` : ''})${detail}`, 'other', url, e);
}

export function s3Client(loc: S3Location): S3Client {
  const config: S3ClientConfig = {};
  const region = loc.region ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? (loc.endpoint ? 'us-east-1' : undefined);
  if (region) config.region = region;
  if (loc.endpoint) {
    config.endpoint = loc.endpoint;
    config.forcePathStyle = true;
    config.requestChecksumCalculation = 'WHEN_REQUIRED';
    config.responseChecksumValidation = 'WHEN_REQUIRED';
  }
  return new S3Client(config);
}

export interface ObjectHead {
  bytes: number;
  etag?: string;
}

export interface PutCondition {
  /** create only: fails with a 'precondition' StorageError if the key exists (servers that support it) */
  ifAbsent?: boolean;
  /** replace only this version (ETag) */
  ifMatch?: string;
}

type Body = { transformToByteArray(): Promise<Uint8Array> } & Partial<AsyncIterable<Uint8Array>>;

export class S3Bucket implements BucketLike {
  readonly client: S3Client;

  constructor(
    readonly loc: S3Location,
    client?: S3Client,
  ) {
    this.client = client ?? s3Client(loc);
  }

  url(key = ''): string {
    return `s3://${this.loc.bucket}/${key}`;
  }

  private async send<T>(op: string, key: string, run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (e) {
      throw storageError(e, this.url(key), op);
    }
  }

  /** fails with a 'no-bucket' StorageError when the bucket is missing (HEAD of a key cannot tell bucket from key) */
  async checkBucket(): Promise<void> {
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.loc.bucket }));
    } catch (e) {
      const err = e as SdkError;
      if (err.name === 'NotFound' || err.$metadata?.httpStatusCode === 404) throw new StorageError(`${this.url()}: the bucket does not exist`, 'no-bucket', this.url(), e);
      throw storageError(e, this.url(), 'HEAD bucket');
    }
  }

  async head(key: string): Promise<ObjectHead | null> {
    try {
      const r = await this.client.send(new HeadObjectCommand({ Bucket: this.loc.bucket, Key: key }));
      return { bytes: r.ContentLength ?? 0, ...(r.ETag ? { etag: r.ETag } : {}) };
    } catch (e) {
      const err = e as SdkError;
      if (err.name === 'NotFound' || err.name === 'NoSuchKey' || err.$metadata?.httpStatusCode === 404) return null;
      throw storageError(e, this.url(key), 'HEAD');
    }
  }

  /** GetObject's body and ETag, or null when the key is absent */
  private async open(key: string): Promise<{ body: Body; etag?: string } | null> {
    try {
      const r = await this.client.send(new GetObjectCommand({ Bucket: this.loc.bucket, Key: key }));
      return { body: r.Body as Body, ...(r.ETag ? { etag: r.ETag } : {}) };
    } catch (e) {
      if ((e as SdkError).name === 'NoSuchKey') return null;
      throw storageError(e, this.url(key), 'GET');
    }
  }

  async get(key: string): Promise<(BucketObject & { etag?: string }) | null> {
    const r = await this.open(key);
    if (!r) return null;
    const bytes = await this.send('GET', key, () => r.body.transformToByteArray());
    return {
      arrayBuffer: async () => bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer,
      text: async () => new TextDecoder().decode(bytes),
      ...(r.etag ? { etag: r.etag } : {}),
    };
  }

  /** size and sha256 of an object, streamed (shards of real CLIPs are hundreds of MB); null if absent */
  async hash(key: string): Promise<{ bytes: number; sha256: string } | null> {
    const r = await this.open(key);
    if (!r) return null;
    return this.send('GET', key, async () => {
      const h = createHash('sha256');
      let bytes = 0;
      const body = r.body;
      if (body[Symbol.asyncIterator]) {
        for await (const chunk of body as AsyncIterable<Uint8Array>) {
          h.update(chunk);
          bytes += chunk.byteLength;
        }
      } else {
        const all = await body.transformToByteArray();
        h.update(all);
        bytes = all.byteLength;
      }
      return { bytes, sha256: h.digest('hex') };
    });
  }

  async put(key: string, value: ArrayBuffer | ArrayBufferView | string, cond: PutCondition = {}): Promise<{ etag?: string }> {
    const body = typeof value === 'string' ? value : value instanceof ArrayBuffer ? new Uint8Array(value) : new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
    const r = await this.send('PUT', key, () =>
      this.client.send(
        new PutObjectCommand({
          Bucket: this.loc.bucket,
          Key: key,
          Body: body,
          ...(key.endsWith('.json') ? { ContentType: 'application/json' } : { ContentType: 'application/octet-stream' }),
          ...(cond.ifAbsent ? { IfNoneMatch: '*' } : {}),
          ...(cond.ifMatch ? { IfMatch: cond.ifMatch } : {}),
        }),
      ),
    );
    return r.ETag ? { etag: r.ETag } : {};
  }

  async delete(keys: string | string[]): Promise<void> {
    for (const k of Array.isArray(keys) ? keys : [keys]) await this.send('DELETE', k, () => this.client.send(new DeleteObjectCommand({ Bucket: this.loc.bucket, Key: k })));
  }

  async list(o: { prefix?: string; cursor?: string; limit?: number } = {}): Promise<BucketListResult> {
    const r = await this.send('LIST', o.prefix ?? '', () =>
      this.client.send(new ListObjectsV2Command({ Bucket: this.loc.bucket, Prefix: o.prefix, ContinuationToken: o.cursor, MaxKeys: o.limit })),
    );
    return {
      objects: (r.Contents ?? []).flatMap((x) => (x.Key ? [{ key: x.Key }] : [])),
      truncated: Boolean(r.IsTruncated),
      ...(r.NextContinuationToken ? { cursor: r.NextContinuationToken } : {}),
    };
  }
}
