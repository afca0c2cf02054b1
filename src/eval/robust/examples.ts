/** PNG data URLs of [0,1] float RGB images (sharp), nearest-neighbour upscaled so small images stay legible. */
import sharp from 'sharp';
import { quantize } from '../../util/quantize.js';

export async function pngDataUrl(rgb: Float32Array, size: number, scale = 4): Promise<string> {
  const bytes = quantize(rgb.subarray(0, size * size * 3));
  const png = await sharp(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength), { raw: { width: size, height: size, channels: 3 } })
    .resize(size * scale, size * scale, { kernel: 'nearest' })
    .png()
    .toBuffer();
  return `data:image/png;base64,${png.toString('base64')}`;
}

/** 0.5 + (adv - clean) * gain, with gain = 0.5 / max|adv - clean| (so the largest change hits black/white). */
export function magnifiedDifference(clean: Float32Array, adv: Float32Array): { image: Float32Array; gain: number } {
  let mx = 0;
  for (let i = 0; i < clean.length; i++) mx = Math.max(mx, Math.abs(adv[i] - clean[i]));
  const gain = mx > 0 ? 0.5 / mx : 0;
  const image = new Float32Array(clean.length);
  for (let i = 0; i < clean.length; i++) image[i] = 0.5 + (adv[i] - clean[i]) * gain;
  return { image, gain };
}
