/**
 * Node entry: `node --import tsx functions/node.ts --model DIR --data DIR [--port N] [--host H] [--config FILE]`
 * (same flags as `manyfold serve`). Thin: parse flags, start the server, install graceful shutdown.
 * Env: MANYFOLD_CONFIG and the variables of CONFIG_VARIABLES (src/config.ts), as on every runtime.
 */
import { parseArgs } from 'node:util';

const usage = 'usage: functions/node.ts --model DIR --data DIR [--port N] [--host H] [--config FILE]';
let values: { model?: string; data?: string; port?: string; host?: string; config?: string };
try {
  ({ values } = parseArgs({
    options: {
      model: { type: 'string' },
      data: { type: 'string' },
      port: { type: 'string' },
      host: { type: 'string' },
      config: { type: 'string' },
    },
  }));
} catch (e) {
  // an unknown or value-less flag: say which, without a stack trace
  process.stderr.write(`${(e as Error).message}\n${usage}\n`);
  process.exit(2);
}
const missing = (['model', 'data'] as const).filter((f) => !values[f]);
if (missing.length) {
  process.stderr.write(`missing ${missing.map((f) => `--${f}`).join(' and ')}\n${usage}\n`);
  process.exit(2);
}
if (values.port !== undefined && !/^\d+$/.test(values.port)) {
  process.stderr.write(`--port: expected an integer >= 0 (0 = any free port), got ${JSON.stringify(values.port)}\n${usage}\n`);
  process.exit(2);
}
// loaded after the flags are checked: a bad flag fails at once, without loading the model stack
const { installSignalHandlers, startServer } = await import('../src/node/server.js');
const running = await startServer({
  modelDir: values.model!,
  dataDir: values.data!,
  ...(values.port !== undefined ? { port: Number(values.port) } : {}),
  ...(values.host ? { host: values.host } : {}),
  ...(values.config ? { configFile: values.config } : {}),
});
installSignalHandlers(running);
process.stdout.write(`manyfold API on ${running.url} (docs: ${running.url}/docs)\n`);
