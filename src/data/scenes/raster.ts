/**
 * A tiny anti-aliased rasteriser for the `scenes` images: filled shapes (4x4 supersampling per pixel) over a
 * textured background, into a raw RGB buffer. Pure TypeScript, deterministic, no canvas dependency.
 */
import { Rng } from '../../util/rng.js';
import type { Shape } from './vocab.js';

export type Texture =
  | { kind: 'plain' }
  | { kind: 'gradient'; angle: number; amplitude: number }
  | { kind: 'noise'; amplitude: number; seed: number }
  | { kind: 'stripes'; angle: number; period: number; amplitude: number }
  | { kind: 'checker'; cell: number; amplitude: number };

export interface RenderObject {
  shape: Shape;
  x: number; // centre, 0..1
  y: number;
  scale: number; // fraction of the image edge (about the radius)
  rotation: number; // radians
  rgb: [number, number, number];
}

export interface RenderSpec {
  backgroundRgb: readonly [number, number, number];
  texture: Texture;
  objects: RenderObject[];
}

type Pt = readonly [number, number];

function regular(n: number, radius: number, phase: number): Pt[] {
  return Array.from({ length: n }, (_, k) => {
    const a = phase + (2 * Math.PI * k) / n;
    return [radius * Math.cos(a), radius * Math.sin(a)] as const;
  });
}

// Shapes in units of the object's scale, y pointing down, centred on the origin.
const TRIANGLE: Pt[] = regular(3, 1.3, -Math.PI / 2).map(([x, y]) => [x, y + 0.12] as const);
const STAR: Pt[] = Array.from({ length: 10 }, (_, k) => {
  const r = k % 2 === 0 ? 1.3 : 0.56;
  const a = -Math.PI / 2 + (Math.PI * k) / 5;
  return [r * Math.cos(a), r * Math.sin(a) + 0.08] as const;
});

function inPolygon(poly: Pt[], x: number, y: number): boolean {
  let inside = false;
  for (let i = 0, j = poly.length - 1; i < poly.length; j = i++) {
    const [xi, yi] = poly[i];
    const [xj, yj] = poly[j];
    if (yi > y !== yj > y && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) inside = !inside;
  }
  return inside;
}

/** inside test in shape units */
export function insideShape(shape: Shape, u: number, v: number): boolean {
  const au = Math.abs(u);
  const av = Math.abs(v);
  switch (shape) {
    case 'circle':
      return u * u + v * v <= 1;
    case 'square':
      return au <= 0.88 && av <= 0.88;
    case 'diamond':
      return au / 0.8 + av / 1.22 <= 1;
    case 'cross':
      return (au <= 0.38 && av <= 1.1) || (av <= 0.38 && au <= 1.1);
    case 'triangle':
      return inPolygon(TRIANGLE, u, v);
    case 'star':
      return inPolygon(STAR, u, v);
  }
}

/** largest extent of a shape in its own units (for layout and bounding boxes) */
export const SHAPE_EXTENT = 1.32;

const SUB = 4; // 4x4 samples per pixel

function clamp255(v: number): number {
  return v < 0 ? 0 : v > 255 ? 255 : Math.round(v);
}

function renderBackground(spec: RenderSpec, px: number, out: Float32Array): void {
  const [br, bg, bb] = spec.backgroundRgb;
  const t = spec.texture;
  const rng = t.kind === 'noise' ? new Rng(t.seed) : undefined;
  for (let y = 0; y < px; y++) {
    for (let x = 0; x < px; x++) {
      const fx = (x + 0.5) / px;
      const fy = (y + 0.5) / px;
      let d = 0;
      switch (t.kind) {
        case 'gradient':
          d = t.amplitude * ((fx - 0.5) * Math.cos(t.angle) + (fy - 0.5) * Math.sin(t.angle)) * 2;
          break;
        case 'noise':
          d = t.amplitude * (rng!.next() * 2 - 1);
          break;
        case 'stripes':
          d = t.amplitude * Math.sin(((fx * Math.cos(t.angle) + fy * Math.sin(t.angle)) * px * 2 * Math.PI) / t.period);
          break;
        case 'checker':
          d = ((Math.floor((x * 64) / px / t.cell) + Math.floor((y * 64) / px / t.cell)) & 1 ? 1 : -1) * t.amplitude;
          break;
        case 'plain':
          break;
      }
      const o = (y * px + x) * 3;
      out[o] = br + d;
      out[o + 1] = bg + d;
      out[o + 2] = bb + d;
    }
  }
}

/** Renders a scene to px x px RGB uint8 (row-major, 3 channels). */
export function renderScene(spec: RenderSpec, px: number): Uint8Array {
  const acc = new Float32Array(px * px * 3);
  renderBackground(spec, px, acc);
  for (const obj of spec.objects) {
    const s = obj.scale * px;
    const cx = obj.x * px;
    const cy = obj.y * px;
    const ext = s * SHAPE_EXTENT + 1;
    const x0 = Math.max(0, Math.floor(cx - ext));
    const x1 = Math.min(px - 1, Math.ceil(cx + ext));
    const y0 = Math.max(0, Math.floor(cy - ext));
    const y1 = Math.min(px - 1, Math.ceil(cy + ext));
    const cos = Math.cos(-obj.rotation);
    const sin = Math.sin(-obj.rotation);
    const inside = (px_: number, py_: number): boolean => {
      const dx = (px_ - cx) / s;
      const dy = (py_ - cy) / s;
      return insideShape(obj.shape, dx * cos - dy * sin, dx * sin + dy * cos);
    };
    // inside/outside at pixel corners; pixels whose 4 corners and centre agree are fully in or out, only
    // edge pixels are supersampled (shape features are several pixels wide at >= 16 px, so none is missed)
    const w = x1 - x0 + 2;
    const corners = new Uint8Array(w * (y1 - y0 + 2));
    for (let y = y0; y <= y1 + 1; y++) for (let x = x0; x <= x1 + 1; x++) corners[(y - y0) * w + (x - x0)] = inside(x, y) ? 1 : 0;
    for (let y = y0; y <= y1; y++) {
      for (let x = x0; x <= x1; x++) {
        const k = (y - y0) * w + (x - x0);
        const c = corners[k] + corners[k + 1] + corners[k + w] + corners[k + w + 1];
        let a: number;
        if ((c === 0 || c === 4) && inside(x + 0.5, y + 0.5) === (c === 4)) {
          if (c === 0) continue;
          a = 1;
        } else {
          let hits = 0;
          for (let sy = 0; sy < SUB; sy++) {
            for (let sx = 0; sx < SUB; sx++) if (inside(x + (sx + 0.5) / SUB, y + (sy + 0.5) / SUB)) hits++;
          }
          if (hits === 0) continue;
          a = hits / (SUB * SUB);
        }
        const o = (y * px + x) * 3;
        acc[o] = acc[o] * (1 - a) + obj.rgb[0] * a;
        acc[o + 1] = acc[o + 1] * (1 - a) + obj.rgb[1] * a;
        acc[o + 2] = acc[o + 2] * (1 - a) + obj.rgb[2] * a;
      }
    }
  }
  const out = new Uint8Array(acc.length);
  for (let i = 0; i < acc.length; i++) out[i] = clamp255(acc[i]);
  return out;
}
