/**
 * Node entry: `node --import tsx functions/node.ts --model DIR --data DIR [--port N] [--host H] [--config FILE]`
 * (same flags as `manyfold serve`). Thin: parse flags, start the server, install graceful shutdown.
 * Env: MANYFOLD_CONFIG and the variables of CONFIG_VARIABLES (src/config.ts), as on every runtime.
 */
import { parseArgs } from 'node:util';
import { installSignalHandlers, startServer } from '../src/node/server.js';

const { values } = parseArgs({
  options: {
    model: { type: 'string' },
    data: { type: 'string' },
    port: { type: 'string' },
    host: { type: 'string' },
    config: { type: 'string' },
  },
});
if (!values.model || !values.data) {
  process.stderr.write('usage: functions/node.ts --model DIR --data DIR [--port N] [--host H] [--config FILE]\n');
  process.exit(2);
}
const running = await startServer({
  modelDir: values.model,
  dataDir: values.data,
  ...(values.port !== undefined ? { port: Number(values.port) } : {}),
  ...(values.host ? { host: values.host } : {}),
  ...(values.config ? { configFile: values.config } : {}),
});
installSignalHandlers(running);
process.stdout.write(`manyfold API on ${running.url} (docs: ${running.url}/docs)\n`);
