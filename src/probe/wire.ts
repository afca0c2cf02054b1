/**
 * What a perturbed image becomes on the way to a real system: 8-bit pixels in an image file. An attack's float
 * perturbation below half a grey level vanishes in quantisation, and JPEG removes much of what survives; the
 * probe therefore reports recall on what it actually sent, and can measure what the encoding took away
 * (`roundTrip`: the pixels the server will decode).
 */
import sharp from 'sharp';
import { z } from 'zod';

const wireEncodingSchema = z.discriminatedUnion('format', [
  z.strictObject({ format: z.literal('png') }),
  z.strictObject({ format: z.literal('jpeg'), quality: z.number().int().min(1).max(100).default(85) }),
]);
export type WireEncoding = z.infer<typeof wireEncodingSchema>;

/** `png` or `jpeg` / `jpeg:Q` (the CLI's --encoding) */
export function parseWireEncoding(s: string): WireEncoding {
  const m = /^(png|jpeg)(?::(\d+))?$/.exec(s.trim());
  if (!m || (m[1] === 'png' && m[2] !== undefined)) throw new Error(`--encoding must be png, jpeg or jpeg:QUALITY (1-100), got '${s}'`);
  return wireEncodingSchema.parse(m[1] === 'png' ? { format: 'png' } : { format: 'jpeg', ...(m[2] ? { quality: Number(m[2]) } : {}) });
}

export function describeEncoding(e: WireEncoding): string {
  return e.format === 'png' ? 'PNG (lossless, 8-bit)' : `JPEG quality ${e.quality} (4:4:4)`;
}

export { quantize } from '../util/quantize.js';

interface EncodedImage {
  bytes: Uint8Array;
  mime: 'image/png' | 'image/jpeg';
}

/** one S x S RGB image (uint8, row-major) as an image file */
export async function encodeImage(rgb: Uint8Array, size: number, enc: WireEncoding): Promise<EncodedImage> {
  if (rgb.length !== size * size * 3) throw new Error(`encodeImage: expected ${size} x ${size} x 3 = ${size * size * 3} bytes, got ${rgb.length}`);
  const img = sharp(Buffer.from(rgb.buffer, rgb.byteOffset, rgb.byteLength), { raw: { width: size, height: size, channels: 3 } });
  if (enc.format === 'png') return { bytes: new Uint8Array(await img.png({ compressionLevel: 6 }).toBuffer()), mime: 'image/png' };
  // 4:4:4: the probe plays the attacker, who chooses the client's encoding and keeps full-resolution colour (4:2:0
  // would average each 2x2 block's chroma away); it is also what the EOT's JPEG model (jpeg-js) does
  return { bytes: new Uint8Array(await img.jpeg({ quality: enc.quality, chromaSubsampling: '4:4:4' }).toBuffer()), mime: 'image/jpeg' };
}

/** the pixels a server decodes from `encodeImage(rgb)`: PNG gives rgb back; JPEG its lossy version */
export async function roundTrip(rgb: Uint8Array, size: number, enc: WireEncoding): Promise<Uint8Array> {
  if (enc.format === 'png') return rgb;
  const { bytes } = await encodeImage(rgb, size, enc);
  const { data, info } = await sharp(bytes).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  if (info.width !== size || info.height !== size || info.channels !== 3) throw new Error(`JPEG round trip gave ${info.width}x${info.height}x${info.channels}`);
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}
