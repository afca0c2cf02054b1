/**
 * `manyfold embed --model DIR [--images F1,F2,...] [--texts-file F] [--json OUT]`: L2-normalised embeddings of
 * images and texts, in input order, and the token ids the model's tokenizer produced (with its start and end
 * tokens, no padding), as one JSON object:
 *   {"model": "<artifact id>", "image_embeds": [[...]], "text_embeds": [[...]], "input_ids": [[...]]}
 * The numbers are those of POST /v1/embed for the same model and inputs (same decode rule, same Encoder;
 * test/api/embed-cli.test.ts compares them), so a user can check a served model against a local run, or an
 * imported CLIP against the framework it came from.
 */
import { readFile, stat } from 'node:fs/promises';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Command } from 'commander';
import { z } from 'zod';
import { BACKEND_KINDS, inferenceSchema, loadConfig } from '../../config.js';
import { choiceFlag, intFlag, THREADS_FLAG_HELP } from '../flags.js';

export interface EmbedOutput {
  model: string;
  image_embeds: number[][];
  text_embeds: number[][];
  input_ids: number[][];
}

const TextsFile = z.array(z.string(), { error: 'expected a JSON array of strings' });

/** Reads and validates a texts file (a JSON array of strings); every error names the file and the element. */
export async function readTextsFile(file: string): Promise<string[]> {
  let raw: string;
  try {
    raw = await readFile(file, 'utf8');
  } catch (e) {
    throw new Error(`${file}: cannot read the texts file: ${(e as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch (e) {
    throw new Error(`${file}: not valid JSON (${(e as Error).message}); expected a JSON array of strings`);
  }
  const r = TextsFile.safeParse(json);
  if (!r.success) {
    const issue = r.error.issues[0];
    const at = issue.path.length ? `[${issue.path.join('][')}]: ` : '';
    throw new Error(`${file}: ${at}${issue.message}`);
  }
  return r.data;
}

/** "a.jpg,b.png" -> paths; empty entries are an error (a stray comma is more likely a mistake than intended). */
export function parseImageList(value: string): string[] {
  const parts = value.split(',').map((p) => p.trim());
  const empty = parts.findIndex((p) => p === '');
  if (empty >= 0) throw new Error(`--images: entry ${empty + 1} of "${value}" is empty`);
  return parts;
}

/**
 * Embeds with an already loaded Encoder (the API and this command share it). Images are decoded by the model's
 * decode rule (decodeSpecForModel: a CLIP model gets CLIPImageProcessor's); errors name the offending file.
 */
export async function embedInputs(
  encoder: import('../../model/encoder.js').Encoder,
  modelId: string,
  images: readonly string[],
  texts: readonly string[],
): Promise<EmbedOutput> {
  const { decodeImage, decodeSpecForModel } = await import('../../data/imageCache.js');
  const spec = decodeSpecForModel(encoder.config);
  const per = spec.size * spec.size * 3;
  const pixels = new Uint8Array(images.length * per);
  for (const [i, file] of images.entries()) {
    let bytes: Buffer;
    try {
      const st = await stat(file);
      if (!st.isFile()) throw new Error('not a file');
      bytes = await readFile(file);
    } catch (e) {
      throw new Error(`${file}: cannot read the image: ${(e as Error).message}`);
    }
    try {
      pixels.set(await decodeImage(bytes, spec), i * per);
    } catch (e) {
      throw new Error(`${file}: cannot decode the image: ${(e as Error).message}`);
    }
  }
  const rows = (m: Float32Array, n: number): number[][] => Array.from({ length: n }, (_, i) => Array.from(m.subarray(i * encoder.dim, (i + 1) * encoder.dim)));
  return {
    model: modelId,
    image_embeds: images.length ? rows(await encoder.embedImagesMatrixAsync(pixels, images.length), images.length) : [],
    text_embeds: texts.length ? rows(await encoder.embedTextsMatrixAsync(texts), texts.length) : [],
    input_ids: texts.map((t) => encoder.tokenizer.encode(t)),
  };
}

export function registerEmbedCommand(program: Command): void {
  program
    .command('embed')
    .description('embed images and/or texts with a model (L2-normalised, input order) and print the token ids; the numbers POST /v1/embed returns')
    .requiredOption('--model <dir>', 'model artifact directory (or a training run directory)')
    .option('--images <list>', 'comma-separated image files')
    .option('--texts-file <file>', 'JSON file holding an array of strings')
    .option('--json <file>', 'write the JSON here (default: stdout)')
    .option('--backend <name>', `${BACKEND_KINDS.join(' | ')} (docs/gpu.md)`, choiceFlag(BACKEND_KINDS))
    .option('--threads <n>', THREADS_FLAG_HELP, intFlag(1))
    .option('--inference <engine>', 'onnx (onnxruntime-node) | tfjs | auto = onnx where it loads (default auto, as serve)', choiceFlag(inferenceSchema.options))
    .action(async (o: { model: string; images?: string; textsFile?: string; json?: string; backend?: 'auto' | 'tensorflow' | 'wasm' | 'cpu'; threads?: number; inference?: (typeof inferenceSchema.options)[number] }) => {
      if (o.images === undefined && o.textsFile === undefined) throw new Error('give --images and/or --texts-file');
      const images = o.images === undefined ? [] : parseImageList(o.images);
      const texts = o.textsFile === undefined ? [] : await readTextsFile(o.textsFile);
      const config = loadConfig({ env: process.env, overrides: { backend: o.backend, threads: o.threads, inference: o.inference } });
      const [{ initBackend }, { loadEncoder }, { resolveModelDir }] = await Promise.all([
        import('../../engine/backend.js'),
        import('../../model/load-encoder.js'),
        import('./eval.js'),
      ]);
      await initBackend(config.backend, { threads: config.threads });
      const encoder = await loadEncoder(resolveModelDir(o.model), {
        inference: config.inference,
        ...(config.inferenceThreads ? { threads: config.inferenceThreads } : {}),
      });
      try {
        const out = await embedInputs(encoder, encoder.version, images, texts);
        const json = `${JSON.stringify(out)}\n`;
        if (o.json) {
          mkdirSync(dirname(o.json), { recursive: true });
          writeFileSync(o.json, json);
          process.stderr.write(`${out.image_embeds.length} image and ${out.text_embeds.length} text embeddings (dim ${encoder.dim}, on ${encoder.engine}) written to ${o.json}\n`);
        } else {
          process.stdout.write(json);
        }
      } finally {
        await encoder.dispose();
      }
    });
}
