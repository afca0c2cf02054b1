import type { Command } from 'commander';
import { bytesFlag, choiceFlag } from '../flags.js';

export function registerImportCommand(program: Command): void {
  program
    .command('import')
    .description('import a pretrained CLIP checkpoint directory (Hugging Face CLIPModel or open_clip, safetensors) as a Manyfold model artifact')
    .requiredOption('--from <dir>', 'checkpoint directory (config + safetensors + tokenizer files); never downloaded')
    .requiredOption('--out <dir>', 'artifact directory to write')
    .option('--format <name>', 'auto | hf | open_clip (default auto: detected from the files)', choiceFlag(['auto', 'hf', 'open_clip'] as const), 'auto')
    .option('--activation <name>', 'quick_gelu | gelu: required when the config does not name the MLP activation (it is not in the weights)', choiceFlag(['quick_gelu', 'gelu'] as const))
    .option('--overwrite', 'replace an existing artifact at --out')
    .option('--shard-bytes <size>', 'largest weight shard, e.g. 24MiB (default 32MiB; a tensor larger than it gets a shard of its own)', bytesFlag(4))
    .action(async (o) => {
      const { importClipCheckpoint } = await import('../../model/clip/import.js');
      const r = await importClipCheckpoint({
        from: o.from as string,
        out: o.out as string,
        format: o.format as 'auto' | 'hf' | 'open_clip',
        ...(o.activation ? { activation: o.activation as 'quick_gelu' | 'gelu' } : {}),
        overwrite: Boolean(o.overwrite),
        ...(o.shardBytes !== undefined ? { shardBytes: o.shardBytes as number } : {}),
      });
      process.stdout.write(`${r.summary}\n`);
    });
}
