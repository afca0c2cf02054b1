import { Option, type Command } from 'commander';
import { inferenceSchema } from '../../config.js';
import { intFlag } from '../flags.js';

export function registerServeCommand(program: Command): void {
  program
    .command('serve')
    .description('serve the retrieval API (search, ingest, blue/green models, attack probes) over HTTP')
    .requiredOption('--model <dir>', 'model artifact directory (or a directory of artifacts: the registry)')
    .requiredOption('--data <dir>', 'data directory: items, image blobs, jobs, probe reports, the LanceDB index')
    .option('--port <n>', 'port (0 = any free port; default 8080 or MANYFOLD_PORT)', intFlag(0))
    .option('--host <host>', 'interface to listen on (default 127.0.0.1 or MANYFOLD_HOST)')
    .option('--config <file>', 'JSON config file (sections server, index, auth, limits, backend)')
    .addOption(
      new Option('--inference <engine>', 'engine for embeddings: onnx (onnxruntime-node, native CPU), tfjs, or auto = onnx where it loads (default auto or MANYFOLD_INFERENCE)').choices(
        inferenceSchema.options,
      ),
    )
    .action(async (o) => {
      const { startServer, installSignalHandlers } = await import('../../node/server.js');
      const running = await startServer({
        modelDir: o.model,
        dataDir: o.data,
        ...(o.port !== undefined ? { port: o.port as number } : {}),
        ...(o.host ? { host: o.host as string } : {}),
        ...(o.config ? { configFile: o.config as string } : {}),
        ...(o.inference ? { overrides: { inference: o.inference as string } } : {}),
      });
      installSignalHandlers(running);
      process.stdout.write(`manyfold API on ${running.url} (docs: ${running.url}/docs; embeddings on ${running.api.service.active.encoder.engine})\n`);
      await new Promise(() => undefined); // runs until a signal
    });
}
