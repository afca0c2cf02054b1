/**
 * Adversarial examples as an HTML section of a report (Node only: images are encoded with sharp, so the edge's
 * renderer takes the section pre-rendered): the clean and the adversarial image, their magnified difference, and
 * the caption edit.
 */
import sharp from 'sharp';
import { quantize } from '../../util/quantize.js';
import { escapeHtml as esc } from './escape.js';
import type { AdversarialExample } from './evaluate.js';

/** PNG data URLs of [0,1] float RGB images, nearest-neighbour upscaled so small images stay legible */

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

function captionDiff(a: string, b: string): string {
  const wa = a.split(/\s+/);
  const wb = b.split(/\s+/);
  if (wa.length !== wb.length) return `<del>${esc(a)}</del><br><ins>${esc(b)}</ins>`;
  return wb.map((w, i) => (w === wa[i] ? esc(w) : `<del>${esc(wa[i])}</del> <ins>${esc(w)}</ins>`)).join(' ');
}

const rankText = (r: number | null) => (r === null ? 'failed' : String(r));

export async function renderExamplesHtml(examples: readonly AdversarialExample[]): Promise<string> {
  if (examples.length === 0) return '';
  const parts = [
    '<h2>Adversarial examples</h2><p>First chunk of queries; images upscaled 4x (nearest). Difference = 0.5 + (adversarial − clean) × gain, gain so that the largest change is black or white. Ranks are 0-based ranks of the gold item for the image query.</p>',
  ];
  for (const ex of examples) {
    const figs = [`<figure><img src="${await pngDataUrl(ex.clean, ex.size)}" alt="clean"><figcaption>clean ${esc(ex.imageId)}<br>rank ${rankText(ex.cleanRank)}</figcaption></figure>`];
    if (ex.adv) {
      const diff = magnifiedDifference(ex.clean, ex.adv);
      figs.push(`<figure><img src="${await pngDataUrl(ex.adv, ex.size)}" alt="adversarial"><figcaption>${esc(ex.label)}<br>rank ${rankText(ex.advRank)}, L∞ ${ex.linf255.toFixed(2)}/255</figcaption></figure>`);
      figs.push(`<figure><img src="${await pngDataUrl(diff.image, ex.size)}" alt="difference"><figcaption>difference ×${diff.gain.toFixed(0)}</figcaption></figure>`);
    }
    const edited = ex.captionAdversarial !== null && ex.captionAdversarial !== ex.captionOriginal;
    parts.push(`<div class="ex">${figs.join('')}<div class="cap"><p><b>caption</b> (${esc(ex.label)}): ${edited ? captionDiff(ex.captionOriginal, ex.captionAdversarial!) : `${esc(ex.captionOriginal)} <i>(unchanged)</i>`}</p></div></div>`);
  }
  return parts.join('\n');
}
