/**
 * Untrusted image bytes -> model pixels, with the limits checked in the cheap order:
 * 1. base64 shape and encoded size (before decoding base64);
 * 2. the declared dimensions from the image header (sharp metadata reads the header only, no pixel decoding),
 *    so a PNG declaring 50000 x 50000 pixels is refused in about a millisecond (decompression bombs);
 * 3. only then a full decode to the model's input, by the model's decode rule (data/imageCache.ts
 *    decodeSpecForModel: Manyfold's 'cover', or CLIPImageProcessor's shortest edge + centre crop for an imported
 *    CLIP model), with sharp's own pixel limit set to the same bound as a second line of defence.
 * No URL is ever fetched: images arrive as bytes (base64 JSON or multipart).
 */
import sharp from 'sharp';
import { decodeImage, sha256, type DecodeSpec } from '../data/imageCache.js';
import { ApiError } from './errors.js';

export interface ImageLimits {
  maxImageBytes: number;
  maxImagePixels: number;
}

const B64 = /^[A-Za-z0-9+/]*={0,2}$/;
const B64URL = /^[A-Za-z0-9_-]*={0,2}$/;
const DATA_URL = /^data:image\/[a-z0-9.+-]+;base64,/i;

/** Strict base64 (or base64url, or a data: URL of base64) -> bytes. */
export function decodeBase64Image(input: string, field: string, limits: ImageLimits): Buffer {
  let s = input.replace(DATA_URL, '');
  s = s.replace(/\s+/g, '');
  if (s.length === 0) throw new ApiError(422, 'invalid_image', 'image is empty', field);
  if (Math.floor((s.length * 3) / 4) > limits.maxImageBytes + 3) {
    throw new ApiError(413, 'image_too_large', `image exceeds ${limits.maxImageBytes} bytes`, field);
  }
  const std = B64.test(s);
  if ((!std && !B64URL.test(s)) || s.replace(/=+$/, '').length % 4 === 1) {
    throw new ApiError(422, 'invalid_base64', 'image is not valid base64', field);
  }
  const buf = Buffer.from(s, std ? 'base64' : 'base64url');
  if (buf.length === 0) throw new ApiError(422, 'invalid_base64', 'image is not valid base64', field);
  return buf;
}

export interface CheckedImage {
  bytes: Buffer;
  sha256: string;
  format: string;
  width: number;
  height: number;
}

/** Reads the header only; rejects non-images (422) and oversized images by declared pixel count (413). */
export async function checkImage(bytes: Buffer, field: string, limits: ImageLimits): Promise<CheckedImage> {
  if (bytes.length > limits.maxImageBytes) throw new ApiError(413, 'image_too_large', `image exceeds ${limits.maxImageBytes} bytes`, field);
  let meta: Awaited<ReturnType<ReturnType<typeof sharp>['metadata']>>;
  try {
    meta = await sharp(bytes, { limitInputPixels: false }).metadata();
  } catch {
    throw new ApiError(422, 'invalid_image', 'not a decodable image (supported: PNG, JPEG, WebP, GIF, TIFF, AVIF)', field);
  }
  const w = meta.width ?? 0;
  const h = meta.height ?? 0;
  if (!meta.format || w <= 0 || h <= 0) throw new ApiError(422, 'invalid_image', 'image header declares no size', field);
  const pixels = w * h * Math.max(1, meta.pages ?? 1);
  if (pixels > limits.maxImagePixels) {
    throw new ApiError(413, 'image_too_large', `image declares ${w}x${h}${(meta.pages ?? 1) > 1 ? `x${meta.pages} pages` : ''} pixels; the limit is ${limits.maxImagePixels}`, field);
  }
  return { bytes, sha256: sha256(bytes), format: meta.format, width: w, height: h };
}

/**
 * Full decode to the model's input, RGB uint8 [size, size, 3] (call after checkImage). `spec` comes from
 * decodeSpecForModel(encoder.config).
 */
export async function imageToPixels(bytes: Uint8Array, spec: DecodeSpec, field: string, limits: ImageLimits): Promise<Uint8Array> {
  try {
    // sharp's own limit (checked again on the real header) backs up checkImage
    await sharp(bytes, { limitInputPixels: limits.maxImagePixels }).metadata();
    return await decodeImage(bytes, spec);
  } catch (e) {
    if (e instanceof ApiError) throw e;
    throw new ApiError(422, 'invalid_image', 'image could not be decoded', field);
  }
}
