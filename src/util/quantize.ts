/**
 * float pixels in [0, 1] -> uint8, rounding to the nearest level: what any image file stores, so what a server
 * decodes from a perturbed image. Dependency-free: the API probe (also in the Worker), the wire encoding, the JPEG
 * expectation and the report images share it.
 */
export function quantize(pixels: Float32Array): Uint8Array {
  const out = new Uint8Array(pixels.length);
  for (let i = 0; i < pixels.length; i++) {
    const v = Math.round(pixels[i] * 255);
    out[i] = v < 0 ? 0 : v > 255 ? 255 : v;
  }
  return out;
}
