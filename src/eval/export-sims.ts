/**
 * Export a similarity matrix with its ground truth, so recall can be recomputed outside Manyfold (e.g. by the
 * Python `itm_eval(scores_i2t, scores_t2i, txt2img, img2txt)` of the ALBEF / Co-Attack / SGA code bases):
 *
 *   PREFIX.json  {"format":"manyfold-sims/1","shape":[nImages,nTexts],"dtype":"float32","byteOrder":"little",
 *                 "txt2img":[image index per caption],"img2txt":[[caption indices per image]]}
 *   PREFIX.bin   nImages*nTexts float32 little-endian, row-major image x text
 *                (numpy: np.fromfile(PREFIX + '.bin', '<f4').reshape(shape))
 *
 * Both files are written to temporary names and renamed into place. readSims validates the JSON (zod), the .bin
 * size and the ground truth's index ranges.
 */
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import { z } from 'zod';
import { writeFileAtomic, writeJsonAtomic } from '../util/atomic.js';

export const SIMS_FORMAT = 'manyfold-sims/1';

export const simsJsonSchema = z
  .object({
    format: z.literal(SIMS_FORMAT).optional(),
    shape: z.tuple([z.number().int().positive(), z.number().int().positive()]),
    dtype: z.literal('float32').optional(),
    byteOrder: z.literal('little').optional(),
    txt2img: z.array(z.number().int().nonnegative()),
    img2txt: z.array(z.array(z.number().int().nonnegative())),
  })
  .loose()
  .superRefine((v, ctx) => {
    const [nI, nT] = v.shape;
    if (v.txt2img.length !== nT) ctx.addIssue({ code: 'custom', path: ['txt2img'], message: `length ${v.txt2img.length} != nTexts ${nT}` });
    if (v.img2txt.length !== nI) ctx.addIssue({ code: 'custom', path: ['img2txt'], message: `length ${v.img2txt.length} != nImages ${nI}` });
    const bad = v.txt2img.findIndex((g) => g >= nI);
    if (bad >= 0) ctx.addIssue({ code: 'custom', path: ['txt2img', bad], message: `image index ${v.txt2img[bad]} >= nImages ${nI}` });
    v.img2txt.forEach((caps, i) => {
      const b = caps.findIndex((c) => c >= nT);
      if (b >= 0) ctx.addIssue({ code: 'custom', path: ['img2txt', i, b], message: `caption index ${caps[b]} >= nTexts ${nT}` });
    });
  });

export interface ExportedSims {
  sims: Float32Array;
  nImages: number;
  nTexts: number;
  captionToImage: Int32Array;
  imageToCaptions: number[][];
}

const LITTLE_ENDIAN = os.endianness() === 'LE';

/** Write PREFIX.json and PREFIX.bin; returns their paths. */
export async function exportSims(
  prefix: string,
  sims: Float32Array,
  nImages: number,
  nTexts: number,
  captionToImage: ArrayLike<number>,
  imageToCaptions: readonly (readonly number[])[],
): Promise<{ json: string; bin: string }> {
  if (sims.length !== nImages * nTexts) {
    throw new Error(`exportSims: sims has ${sims.length} entries, expected ${nImages} x ${nTexts} = ${nImages * nTexts}`);
  }
  const doc = {
    format: SIMS_FORMAT,
    shape: [nImages, nTexts],
    dtype: 'float32',
    byteOrder: 'little',
    txt2img: Array.from(captionToImage),
    img2txt: imageToCaptions.map((c) => [...c]),
  };
  const parsed = simsJsonSchema.safeParse(doc);
  if (!parsed.success) throw new Error(`exportSims: invalid ground truth: ${issues(parsed.error)}`);

  let bytes: Uint8Array;
  if (LITTLE_ENDIAN) {
    bytes = new Uint8Array(sims.buffer, sims.byteOffset, sims.byteLength);
  } else {
    bytes = new Uint8Array(sims.length * 4);
    const dv = new DataView(bytes.buffer);
    for (let i = 0; i < sims.length; i++) dv.setFloat32(i * 4, sims[i], true);
  }
  const json = `${prefix}.json`;
  const bin = `${prefix}.bin`;
  await writeFileAtomic(bin, bytes);
  await writeJsonAtomic(json, doc);
  return { json, bin };
}

function issues(err: z.ZodError): string {
  return err.issues
    .slice(0, 5)
    .map((i) => `${i.path.length ? i.path.join('.') : '(root)'}: ${i.message}`)
    .join('; ');
}

/** Read PREFIX.json + PREFIX.bin written by exportSims (or by any tool following the same layout). */
export async function readSims(prefix: string): Promise<ExportedSims> {
  const jsonPath = `${prefix}.json`;
  const binPath = `${prefix}.bin`;
  let raw: unknown;
  try {
    raw = JSON.parse(await fs.readFile(jsonPath, 'utf8'));
  } catch (e) {
    throw new Error(`readSims: cannot read ${jsonPath}: ${(e as Error).message}`);
  }
  const parsed = simsJsonSchema.safeParse(raw);
  if (!parsed.success) throw new Error(`readSims: invalid ${jsonPath}: ${issues(parsed.error)}`);
  const [nImages, nTexts] = parsed.data.shape;
  let buf: Buffer;
  try {
    buf = await fs.readFile(binPath);
  } catch (e) {
    throw new Error(`readSims: cannot read ${binPath}: ${(e as Error).message}`);
  }
  const expected = nImages * nTexts * 4;
  if (buf.byteLength !== expected) {
    throw new Error(`readSims: ${binPath} has ${buf.byteLength} bytes, expected ${nImages} x ${nTexts} x 4 = ${expected}`);
  }
  const sims = new Float32Array(nImages * nTexts);
  if (LITTLE_ENDIAN) {
    new Uint8Array(sims.buffer).set(buf);
  } else {
    const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    for (let i = 0; i < sims.length; i++) sims[i] = dv.getFloat32(i * 4, true);
  }
  return {
    sims,
    nImages,
    nTexts,
    captionToImage: Int32Array.from(parsed.data.txt2img),
    imageToCaptions: parsed.data.img2txt,
  };
}
