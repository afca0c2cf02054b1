/**
 * A real local S3 API server for the tests (s3rver from npm, on 127.0.0.1, its objects in a temp directory), the
 * stand-in for S3 / R2's S3 endpoint. Requests pass through a gate the test can close: a closed gate holds every
 * request unanswered (what a client sees when it is killed mid-upload is then decided by the test, not by timing),
 * and `onPut` reports each finished PUT (key, HTTP status).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import S3rver from 's3rver';

export interface LocalS3 {
  endpoint: string;
  bucket: string;
  dir: string;
  /** keys of finished PUTs, in order */
  puts: string[];
  onPut?: (key: string, status: number) => void;
  /** hold new requests (and keep holding them) until open() */
  hold(): void;
  open(): void;
  /** discard the held requests unanswered (their client is gone) */
  drop(): void;
  /** requests held right now */
  held(): number;
  close(): Promise<void>;
}

/** the credentials s3rver accepts (signatures are checked) */
export const S3RVER_ENV = { AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER', AWS_REGION: 'us-east-1' } as const;

export async function startS3rver(bucket = 'manyfold-models'): Promise<LocalS3> {
  const dir = mkdtempSync(join(tmpdir(), 'manyfold-s3rver-'));
  const s3 = new S3rver({ silent: true, directory: dir, configureBuckets: [{ name: bucket, configs: [] }] });
  await s3.configureBuckets();
  const handle = s3.callback();
  let holding = false;
  const waiting: { run: () => void; req: IncomingMessage }[] = [];
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const run = (): void => {
      if (req.method === 'PUT') {
        const key = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname.split('/').slice(2).join('/'));
        res.on('finish', () => {
          local.puts.push(key);
          local.onPut?.(key, res.statusCode);
        });
      }
      handle(req, res);
    };
    if (holding) waiting.push({ run, req });
    else run();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  const local: LocalS3 = {
    endpoint: `http://127.0.0.1:${port}`,
    bucket,
    dir,
    puts: [],
    hold: () => void (holding = true),
    open: () => {
      holding = false;
      for (const w of waiting.splice(0)) w.run();
    },
    drop: () => {
      for (const w of waiting.splice(0)) w.req.socket.destroy();
    },
    held: () => waiting.length,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      (s3 as unknown as { logger?: { exceptions?: { unhandle(): void }; close(): void } }).logger?.exceptions?.unhandle();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return local;
}
