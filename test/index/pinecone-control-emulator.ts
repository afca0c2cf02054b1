/**
 * A local stand-in for the one Pinecone control-plane call Manyfold makes, describe_index
 * (`GET /indexes/{name}` -> IndexModel JSON: name, dimension, metric, host, spec, status), answering for
 * data-plane emulators (pinecone-emulator.ts) registered under index names. No live Pinecone is reachable here.
 * Like the service it requires the api-key header and answers an unknown name with 404 NOT_FOUND.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface DescribedIndex {
  /** the data-plane host (a PineconeEmulator's URL) */
  host: string;
  dimension: number;
  metric?: 'cosine' | 'dotproduct' | 'euclidean';
}

export class PineconeControlEmulator {
  private server: Server | undefined;
  private readonly indexes = new Map<string, DescribedIndex>();
  /** every request path, in order */
  readonly requests: string[] = [];

  constructor(readonly apiKey = 'test-key') {}

  register(name: string, index: DescribedIndex): void {
    this.indexes.set(name, index);
  }

  async start(): Promise<string> {
    this.server = createServer((req, res) => {
      const path = new URL(req.url ?? '/', 'http://127.0.0.1').pathname;
      this.requests.push(`${req.method} ${path}`);
      const send = (status: number, body: unknown) => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(body));
      };
      if (req.headers['api-key'] !== this.apiKey) return send(401, { error: { code: 'UNAUTHENTICATED', message: 'Invalid API Key' }, status: 401 });
      const m = req.method === 'GET' ? /^\/indexes\/([^/]+)$/.exec(path) : null;
      if (!m) return send(404, { error: { code: 'NOT_FOUND', message: `no route ${req.method} ${path}` }, status: 404 });
      const name = decodeURIComponent(m[1]);
      const index = this.indexes.get(name);
      if (!index) return send(404, { error: { code: 'NOT_FOUND', message: `Resource ${name} not found` }, status: 404 });
      send(200, {
        name,
        dimension: index.dimension,
        metric: index.metric ?? 'cosine',
        host: index.host,
        vector_type: 'dense',
        deletion_protection: 'disabled',
        spec: { serverless: { cloud: 'aws', region: 'us-east-1' } },
        status: { ready: true, state: 'Ready' },
      });
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    if (s) await new Promise<void>((resolve) => s.close(() => resolve()));
  }
}
