/**
 * Building and running the Node server: config (loadConfig: file <- MANYFOLD_CONFIG <- variables <- flags, as on
 * every runtime), tfjs backend, and the Node adapters (FileStore, DirectoryCatalogue, createIndex: LanceDB by
 * default, keys generated on a first start), logger -> buildApi (src/api/deps.ts, shared with the edge) ->
 * @hono/node-server. `functions/node.ts` and `manyfold serve` are thin wrappers around startServer; graceful
 * shutdown is `close()` (stop accepting, let in-flight requests finish within server.shutdownTimeoutMs, stop
 * background jobs so they resume at the next start, close the index).
 */
import { serve, type ServerType } from '@hono/node-server';
import type { AddressInfo } from 'node:net';
import { join, resolve } from 'node:path';
import { pino, type Logger } from 'pino';
import type { AppDeps, ManyfoldApi } from '../api/app.js';
import { buildApi } from '../api/deps.js';
import { loadConfig, mergeLayers, type Environment, type ManyfoldConfig } from '../config.js';
import { initBackend } from '../engine/backend.js';
import type { VectorIndex } from '../index/types.js';
import { FileStore } from './file-store.js';
import { createIndex } from './indexes.js';
import { resolveApiKeys } from './keys.js';
import { DirectoryCatalogue } from './model-directories.js';

export interface StartServerOptions {
  /** a model artifact directory, or a directory of artifact directories */
  modelDir: string;
  dataDir: string;
  port?: number;
  host?: string;
  configFile?: string;
  env?: Environment;
  /** extra config layered last (tests, the benchmark) */
  overrides?: Record<string, unknown>;
  logger?: Logger;
  /** where a generated admin key is shown (default: stderr) */
  printKey?: (message: string) => void;
  hooks?: AppDeps['hooks'];
}

export interface RunningServer {
  url: string;
  port: number;
  config: ManyfoldConfig;
  api: ManyfoldApi;
  index: VectorIndex;
  server: ServerType;
  logger: Logger;
  close(): Promise<void>;
}

export async function startServer(opts: StartServerOptions): Promise<RunningServer> {
  const env = opts.env ?? process.env;
  const flags: Record<string, unknown> = { server: { ...(opts.port !== undefined ? { port: opts.port } : {}), ...(opts.host ? { host: opts.host } : {}) } };
  const config = loadConfig({ file: opts.configFile, env, overrides: mergeLayers(flags, opts.overrides) });
  const dataDir = resolve(opts.dataDir);
  const logger =
    opts.logger ??
    pino({
      level: config.server.logLevel,
      base: { service: 'manyfold' },
      redact: { paths: ['authorization', 'headers.authorization', 'req.headers.authorization', 'apiKey', 'pinecone.apiKey'], censor: '[redacted]' },
    });
  const backend = await initBackend(config.backend, { threads: config.threads });
  logger.info({ backend: backend.name, reason: backend.reason }, 'tfjs backend');
  const store = await FileStore.open(dataDir);
  const keys = resolveApiKeys(config.auth.keys, store.keysFile);
  if (keys.generated) {
    (opts.printKey ?? ((m) => process.stderr.write(`${m}\n`)))(
      `manyfold: no MANYFOLD_API_KEYS configured; generated an admin API key (shown once; only its sha256 is stored in ${store.keysFile}):\n  ${keys.generated}`,
    );
  }
  const { api, index } = await buildApi({
    config,
    logger,
    store,
    catalogue: new DirectoryCatalogue([opts.modelDir, join(dataDir, 'models')], {
      inference: config.inference,
      ...(config.inferenceThreads ? { threads: config.inferenceThreads } : {}),
      onFallback: (reason) => logger.info({ reason }, 'embeddings on tfjs'),
    }),
    openIndex: (c) =>
      createIndex({
        kind: c.index.kind,
        dir: c.index.dir ?? join(dataDir, 'index'),
        ...(c.index.annThreshold ? { annThreshold: c.index.annThreshold } : {}),
        ...(c.index.pinecone ? { pinecone: c.index.pinecone } : {}),
      }),
    keys: keys.keys,
    hooks: opts.hooks,
  });
  const server = await new Promise<ServerType>((ok, fail) => {
    const s = serve({ fetch: api.app.fetch, port: config.server.port, hostname: config.server.host }, () => ok(s));
    s.once('error', fail);
  });
  const port = (server.address() as AddressInfo).port;
  const host = config.server.host.includes(':') ? `[${config.server.host}]` : config.server.host;
  const url = `http://${host}:${port}`;
  logger.info({ url, model: api.service.active.id, index: index.kind, keys: keys.source, engine: api.service.active.encoder.engine }, 'manyfold API listening');

  let closing: Promise<void> | undefined;
  const close = () =>
    (closing ??= (async () => {
      logger.info('shutting down: no new connections, finishing in-flight requests');
      const httpServer = server as import('node:http').Server;
      const closed = new Promise<void>((r) => httpServer.close(() => r()));
      // keep-alive connections become idle as their in-flight requests finish: close them as they do
      const idle = setInterval(() => httpServer.closeIdleConnections?.(), 50);
      httpServer.closeIdleConnections?.();
      const timer = setTimeout(() => httpServer.closeAllConnections?.(), config.server.shutdownTimeoutMs);
      await closed;
      clearTimeout(timer);
      clearInterval(idle);
      await api.close();
      await index.close?.();
      logger.info('stopped');
    })());
  return { url, port, config, api, index, server, logger, close };
}

/** SIGTERM/SIGINT -> graceful close, then exit (a second signal exits at once). */
export function installSignalHandlers(running: RunningServer): void {
  let count = 0;
  const onSignal = (sig: NodeJS.Signals) => {
    if (++count > 1) process.exit(130);
    running.logger.info({ signal: sig }, 'signal received');
    running.close().then(
      () => process.exit(0),
      (e) => {
        running.logger.error({ err: (e as Error).message }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}
