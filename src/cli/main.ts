import { Command, CommanderError } from 'commander';
import { ConfigError } from '../config.js';
import { registerTrainCommand } from './commands/train.js';
import { registerEvalCommand } from './commands/eval.js';
import { registerDataCommands } from './commands/data.js';
import { registerExperimentCommand } from './commands/experiment.js';
import { registerServeCommand } from './commands/serve.js';
import { registerProbeCommand } from './commands/probe.js';
import { registerNightlyCommand } from './commands/nightly.js';
import { registerEmbedCommand } from './commands/embed.js';
import { registerImportCommand } from './commands/import.js';
import { registerExportCommand } from './commands/export.js';
import { registerPublishCommand } from './commands/publish.js';

const program = new Command();
program
  .name('manyfold')
  .description('Robust image–text retrieval: train, attack, evaluate and serve an N:N adversarially trained dual encoder')
  .version('0.1.0')
  .showHelpAfterError('(run with --help for usage)');

registerDataCommands(program);
registerTrainCommand(program);
registerEvalCommand(program);
registerExperimentCommand(program);
registerServeCommand(program);
registerProbeCommand(program);
registerNightlyCommand(program);
registerEmbedCommand(program);
registerImportCommand(program);
registerExportCommand(program);
registerPublishCommand(program);

program.exitOverride();
try {
  await program.parseAsync(process.argv);
  // wasm worker threads (--threads > 1) keep the event loop alive after a batch command finishes
  const { wasmWorkerThreads } = await import('../engine/backend.js');
  if (wasmWorkerThreads() > 0) process.exit(process.exitCode ?? 0);
} catch (e) {
  if (e instanceof CommanderError) process.exit(e.exitCode);
  if (e instanceof ConfigError) {
    process.stderr.write(`${e.message}\n`);
    process.exit(2);
  }
  process.stderr.write(`manyfold: ${(e as Error).message}\n`);
  if (process.env.MANYFOLD_DEBUG) process.stderr.write(`${(e as Error).stack}\n`);
  process.exit(1);
}
