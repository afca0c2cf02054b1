import cliProgress from 'cli-progress';

export interface Progress {
  update(value: number, payload?: Record<string, string | number>): void;
  stop(): void;
}

/**
 * A progress bar with ETA on a terminal; on a pipe (CI, logs) a plain line at most every `everyMs` and at
 * the end, so long jobs stay observable without flooding logs.
 */
export function createProgress(label: string, total: number, opts: { stream?: NodeJS.WriteStream; everyMs?: number; quiet?: boolean } = {}): Progress {
  const stream = opts.stream ?? process.stderr;
  if (opts.quiet) return { update() {}, stop() {} };
  if (stream.isTTY) {
    const bar = new cliProgress.SingleBar(
      {
        format: `${label} |{bar}| {value}/{total} {info} | ETA {eta_formatted}`,
        stream,
        hideCursor: true,
        etaBuffer: 50,
        fps: 5,
      },
      cliProgress.Presets.shades_classic,
    );
    bar.start(total, 0, { info: '' });
    return {
      update(value, payload) {
        bar.update(value, { info: formatPayload(payload) });
      },
      stop() {
        bar.stop();
      },
    };
  }
  const everyMs = opts.everyMs ?? 10_000;
  const start = Date.now();
  let last = 0;
  let lastValue = 0;
  let lastPayload: Record<string, string | number> | undefined;
  const print = (value: number, payload?: Record<string, string | number>) => {
    const elapsed = (Date.now() - start) / 1000;
    const eta = value > 0 ? (elapsed / value) * (total - value) : NaN;
    stream.write(`${label} ${value}/${total} ${formatPayload(payload)} elapsed ${elapsed.toFixed(0)}s eta ${Number.isFinite(eta) ? eta.toFixed(0) + 's' : '?'}\n`);
  };
  return {
    update(value, payload) {
      lastValue = value;
      lastPayload = payload;
      const now = Date.now();
      if (now - last >= everyMs) {
        last = now;
        print(value, payload);
      }
    },
    stop() {
      print(lastValue, lastPayload);
    },
  };
}

function formatPayload(payload?: Record<string, string | number>): string {
  if (!payload) return '';
  return Object.entries(payload)
    .map(([k, v]) => `${k} ${typeof v === 'number' ? (Number.isInteger(v) ? v : v.toFixed(4)) : v}`)
    .join(' | ');
}
