/**
 * float pixels in [0, 1] -> uint8, rounding to the nearest level: what any image file stores, so what a server
 * decodes from a perturbed image. Dependency-free (the Worker's probe path imports it; probe/wire.ts adds encoding).
 */
export function quantize(pixels: Float32Array): Uint8Array {
  const out = new Uint8Array(pixels.length);
  for (let i = 0; i < pixels.length; i++) {
    const v = Math.round(pixels[i] * 255);
    out[i] = v < 0 ? 0 : v > 255 ? 255 : v;
  }
  return out;
}
