/** Linear warmup to `lr`, then cosine decay to lr * minLrRatio at the last step. */
export function warmupCosine(step: number, totalSteps: number, lr: number, warmupFraction: number, minLrRatio: number): number {
  const warmup = Math.max(1, Math.round(totalSteps * warmupFraction));
  if (step < warmup) return (lr * (step + 1)) / warmup;
  const progress = Math.min(1, (step - warmup) / Math.max(1, totalSteps - warmup));
  const min = lr * minLrRatio;
  return min + 0.5 * (lr - min) * (1 + Math.cos(Math.PI * progress));
}
