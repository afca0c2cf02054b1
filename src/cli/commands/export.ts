import type { Command } from 'commander';
import { choiceFlag } from '../flags.js';

export function registerExportCommand(program: Command): void {
  program
    .command('export')
    .description('export a CLIP-family model artifact as a standard checkpoint (Hugging Face CLIPModel or open_clip) that PyTorch loads unchanged')
    .requiredOption('--model <dir>', 'model artifact directory (imported, or fine-tuned from an imported model)')
    .requiredOption('--format <name>', 'hf | open_clip', choiceFlag(['hf', 'open_clip'] as const))
    .requiredOption('--out <dir>', 'checkpoint directory to write')
    .option('--dtype <name>', 'f32 (default; bit-identical round trip) | f16 (half the size, rounded)', choiceFlag(['f32', 'f16'] as const), 'f32')
    .option('--overwrite', 'replace an existing directory at --out')
    .action(async (o) => {
      const { exportClipCheckpoint } = await import('../../model/clip/export.js');
      const r = await exportClipCheckpoint({
        model: o.model as string,
        out: o.out as string,
        format: o.format as 'hf' | 'open_clip',
        dtype: o.dtype as 'f32' | 'f16',
        overwrite: Boolean(o.overwrite),
      });
      process.stdout.write(`${r.summary}\n`);
    });
}
