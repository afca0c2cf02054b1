/**
 * A pure-JS stand-in for the subset of `sharp` that the API uses, for runtimes where libvips cannot load
 * (Cloudflare workerd). The Worker build aliases the module specifier `sharp` to this file (infra/wrangler.jsonc
 * `alias`, test/workers/vitest.config.ts `resolve.alias`), so src/api runs unchanged.
 *
 * Supported: PNG (fast-png: 1-16 bit, grey, grey+alpha, RGB, RGBA, palette + tRNS) and baseline/progressive
 * JPEG (jpeg-js). Anything else fails `metadata()`, which the API answers with 422 invalid_image.
 *
 * Order of checks (same contract as sharp in images.ts): `metadata()` reads the header only (PNG IHDR, JPEG SOF
 * marker), so a PNG declaring 50000x50000 pixels is refused by the caller before any decoding; the decode
 * itself re-checks `limitInputPixels`.
 *
 * Differences from sharp: resize uses an area-averaging (box) filter instead of lanczos3, there is no EXIF
 * auto-orientation and no ICC colour management; embeddings of the same image differ slightly (~1e-2 cosine)
 * from those computed by the Node server. Ingest and query through the same runtime for exact parity.
 */
import { decode as decodePngRaw, encode as encodePng } from 'fast-png';
import jpeg from 'jpeg-js';

export interface SharpLikeOptions {
  limitInputPixels?: number | boolean;
  failOn?: string;
  raw?: { width: number; height: number; channels: number };
}

interface Meta {
  format: 'png' | 'jpeg';
  width: number;
  height: number;
  pages: number;
}

function u32be(b: Uint8Array, o: number): number {
  return ((b[o] << 24) >>> 0) + (b[o + 1] << 16) + (b[o + 2] << 8) + b[o + 3];
}

/** Header-only dimensions (no pixel decoding). */
export function readHeader(b: Uint8Array): Meta {
  if (b.length >= 24 && b[0] === 0x89 && b[1] === 0x50 && b[2] === 0x4e && b[3] === 0x47) {
    // PNG: signature (8) + IHDR length (4) + 'IHDR' (4) + width (4) + height (4)
    if (String.fromCharCode(b[12], b[13], b[14], b[15]) !== 'IHDR') throw new Error('PNG without IHDR');
    return { format: 'png', width: u32be(b, 16), height: u32be(b, 20), pages: 1 };
  }
  if (b.length >= 4 && b[0] === 0xff && b[1] === 0xd8) {
    let o = 2;
    while (o + 9 < b.length) {
      if (b[o] !== 0xff) {
        o++;
        continue;
      }
      const marker = b[o + 1];
      if (marker === 0xd8 || marker === 0x01 || (marker >= 0xd0 && marker <= 0xd7) || marker === 0xff) {
        o += marker === 0xff ? 1 : 2;
        continue;
      }
      const len = (b[o + 2] << 8) + b[o + 3];
      // SOF0..SOF15 except DHT (c4), JPG (c8), DAC (cc)
      if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
        return { format: 'jpeg', height: (b[o + 5] << 8) + b[o + 6], width: (b[o + 7] << 8) + b[o + 8], pages: 1 };
      }
      o += 2 + len;
    }
    throw new Error('JPEG without a frame header');
  }
  throw new Error('unsupported image format in this runtime (PNG and JPEG only)');
}

interface Rgba {
  width: number;
  height: number;
  /** RGBA 8-bit */
  data: Uint8Array;
}

function decodeFull(bytes: Uint8Array, limit: number): Rgba {
  const meta = readHeader(bytes);
  if (meta.width * meta.height > limit) throw new Error(`Input image exceeds pixel limit (${meta.width}x${meta.height})`);
  if (meta.format === 'jpeg') {
    const img = jpeg.decode(bytes, { useTArray: true, formatAsRGBA: true, maxResolutionInMP: Math.ceil(limit / 1e6) + 1, maxMemoryUsageInMB: 512 });
    return { width: img.width, height: img.height, data: img.data };
  }
  const png = decodePngRaw(bytes);
  const { width, height, channels, depth } = png;
  const n = width * height;
  const out = new Uint8Array(n * 4);
  const src = png.data;
  if (png.palette) {
    // indexed: data holds palette indices (unpacked by fast-png to one per byte for depth 8; bits otherwise)
    const pal = png.palette;
    const trns = png.transparency;
    const idx = depth === 8 ? (src as Uint8Array) : unpackBits(src as Uint8Array, width, height, depth);
    for (let i = 0; i < n; i++) {
      const p = pal[idx[i]] ?? [0, 0, 0];
      out[i * 4] = p[0];
      out[i * 4 + 1] = p[1];
      out[i * 4 + 2] = p[2];
      out[i * 4 + 3] = p.length > 3 ? (p[3] as number) : trns && idx[i] < trns.length ? trns[idx[i]] : 255;
    }
    return { width, height, data: out };
  }
  const scale = depth === 16 ? 1 / 257 : depth === 8 ? 1 : 255 / ((1 << depth) - 1);
  const vals = depth < 8 ? unpackBits(src as Uint8Array, width * channels, height, depth) : src;
  for (let i = 0; i < n; i++) {
    const o = i * channels;
    let r: number, g: number, b: number, a: number;
    if (channels === 1 || channels === 2) {
      r = g = b = vals[o] * scale;
      a = channels === 2 ? vals[o + 1] * scale : 255;
    } else {
      r = vals[o] * scale;
      g = vals[o + 1] * scale;
      b = vals[o + 2] * scale;
      a = channels === 4 ? vals[o + 3] * scale : 255;
    }
    out[i * 4] = Math.round(r);
    out[i * 4 + 1] = Math.round(g);
    out[i * 4 + 2] = Math.round(b);
    out[i * 4 + 3] = Math.round(a);
  }
  return { width, height, data: out };
}

/** sub-byte samples (rows padded to whole bytes) -> one sample per element */
function unpackBits(src: Uint8Array, samplesPerRow: number, rows: number, depth: number): Uint8Array {
  const out = new Uint8Array(samplesPerRow * rows);
  const rowBytes = Math.ceil((samplesPerRow * depth) / 8);
  const mask = (1 << depth) - 1;
  for (let y = 0; y < rows; y++) {
    for (let x = 0; x < samplesPerRow; x++) {
      const bit = x * depth;
      const byte = src[y * rowBytes + (bit >> 3)];
      out[y * samplesPerRow + x] = (byte >> (8 - depth - (bit & 7))) & mask;
    }
  }
  return out;
}

/** 'cover' (centre crop) or 'fill', area-averaging, alpha flattened over `bg`; returns RGB. */
function resizeRgb(img: Rgba, S: number, fit: string, bg: [number, number, number]): Uint8Array {
  const { width: w, height: h, data } = img;
  let sx0 = 0,
    sy0 = 0,
    sw = w,
    sh = h;
  if (fit === 'cover') {
    const scale = Math.max(S / w, S / h);
    sw = S / scale;
    sh = S / scale;
    sx0 = (w - sw) / 2;
    sy0 = (h - sh) / 2;
  }
  const out = new Uint8Array(S * S * 3);
  const fx = sw / S;
  const fy = sh / S;
  for (let oy = 0; oy < S; oy++) {
    const y0 = sy0 + oy * fy;
    const y1 = y0 + fy;
    for (let ox = 0; ox < S; ox++) {
      const x0 = sx0 + ox * fx;
      const x1 = x0 + fx;
      let r = 0,
        g = 0,
        b = 0,
        wsum = 0;
      const yStart = Math.floor(y0);
      const yEnd = Math.min(h - 1, Math.ceil(y1) - 1);
      const xStart = Math.floor(x0);
      const xEnd = Math.min(w - 1, Math.ceil(x1) - 1);
      for (let y = yStart; y <= Math.max(yStart, yEnd); y++) {
        const wy = Math.min(y + 1, y1) - Math.max(y, y0) || 1e-6;
        for (let x = xStart; x <= Math.max(xStart, xEnd); x++) {
          const wx = Math.min(x + 1, x1) - Math.max(x, x0) || 1e-6;
          const p = (Math.min(h - 1, y) * w + Math.min(w - 1, x)) * 4;
          const a = data[p + 3] / 255;
          const wt = wx * wy;
          r += wt * (data[p] * a + bg[0] * (1 - a));
          g += wt * (data[p + 1] * a + bg[1] * (1 - a));
          b += wt * (data[p + 2] * a + bg[2] * (1 - a));
          wsum += wt;
        }
      }
      const o = (oy * S + ox) * 3;
      out[o] = Math.round(r / wsum);
      out[o + 1] = Math.round(g / wsum);
      out[o + 2] = Math.round(b / wsum);
    }
  }
  return out;
}

class SharpLike {
  private size?: { w: number; h: number; fit: string; kernel?: string };
  private bg: [number, number, number] = [255, 255, 255];
  private toPng = false;

  constructor(
    private readonly input: Uint8Array,
    private readonly opts: SharpLikeOptions = {},
  ) {}

  async metadata(): Promise<Meta> {
    if (this.opts.raw) return { format: 'png', width: this.opts.raw.width, height: this.opts.raw.height, pages: 1 };
    const m = readHeader(this.input);
    const limit = typeof this.opts.limitInputPixels === 'number' ? this.opts.limitInputPixels : Infinity;
    if (m.width * m.height > limit) throw new Error('Input image exceeds pixel limit');
    return m;
  }

  autoOrient(): this {
    return this;
  }
  rotate(): this {
    return this;
  }
  toColourspace(): this {
    return this;
  }
  removeAlpha(): this {
    return this;
  }
  raw(): this {
    return this;
  }
  resize(w: number, h: number, o: { fit?: string; kernel?: string } = {}): this {
    this.size = { w, h, fit: o.fit ?? 'cover', ...(o.kernel ? { kernel: o.kernel } : {}) };
    return this;
  }
  flatten(o: { background?: { r: number; g: number; b: number } } = {}): this {
    if (o.background) this.bg = [o.background.r, o.background.g, o.background.b];
    return this;
  }
  png(): this {
    this.toPng = true;
    return this;
  }

  async toBuffer(o?: { resolveWithObject?: boolean }): Promise<any> {
    let img: Rgba;
    if (this.opts.raw) {
      const { width, height, channels } = this.opts.raw;
      const data = new Uint8Array(width * height * 4);
      for (let i = 0; i < width * height; i++) {
        for (let c = 0; c < 3; c++) data[i * 4 + c] = this.input[i * channels + Math.min(c, channels - 1)];
        data[i * 4 + 3] = channels === 4 ? this.input[i * 4 + 3] : 255;
      }
      img = { width, height, data };
    } else {
      const limit = typeof this.opts.limitInputPixels === 'number' ? this.opts.limitInputPixels : 268_402_689;
      img = decodeFull(this.input, limit);
    }
    let rgb: Uint8Array;
    let W = img.width;
    let H = img.height;
    if (this.size) {
      if (this.size.w !== this.size.h) throw new Error('sharp-shim: only square resizes are supported');
      if (this.size.kernel === 'nearest') {
        W = this.size.w;
        H = this.size.h;
        rgb = new Uint8Array(W * H * 3);
        for (let y = 0; y < H; y++)
          for (let x = 0; x < W; x++) {
            const p = (Math.floor((y * img.height) / H) * img.width + Math.floor((x * img.width) / W)) * 4;
            const o = (y * W + x) * 3;
            rgb[o] = img.data[p];
            rgb[o + 1] = img.data[p + 1];
            rgb[o + 2] = img.data[p + 2];
          }
      } else {
        rgb = resizeRgb(img, this.size.w, this.size.fit, this.bg);
        W = H = this.size.w;
      }
    } else {
      rgb = resizeRgb({ ...img }, img.width, 'fill', this.bg);
    }
    const data = this.toPng ? encodePng({ width: W, height: H, data: rgb, channels: 3, depth: 8 }) : rgb;
    const buf = typeof Buffer !== 'undefined' ? Buffer.from(data.buffer, data.byteOffset, data.byteLength) : data;
    return o?.resolveWithObject ? { data: buf, info: { width: W, height: H, channels: 3, format: this.toPng ? 'png' : 'raw' } } : buf;
  }
}

export default function sharp(input: Uint8Array, opts?: SharpLikeOptions): SharpLike {
  return new SharpLike(input, opts);
}
