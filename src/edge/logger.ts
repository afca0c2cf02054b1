/**
 * A pino-compatible logger for runtimes where pino's transports are unwanted (workerd, Lambda): one JSON line
 * per call on console.log/console.error, the same (object, message) call shape, secrets redacted by key name.
 */
import type { Logger } from 'pino';

const LEVELS = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60, silent: Infinity } as const;
export type LevelName = keyof typeof LEVELS;
const SECRET = /authorization|apikey|api_key|secret|password|token/i;

function redact(o: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o)) out[k] = SECRET.test(k) ? '[redacted]' : v;
  return out;
}

export function consoleLogger(level: LevelName = 'info', base: Record<string, unknown> = { service: 'manyfold' }): Logger {
  const min = LEVELS[level];
  const make = (name: Exclude<LevelName, 'silent'>) => (a?: unknown, b?: unknown) => {
    if (LEVELS[name] < min) return;
    const obj = typeof a === 'object' && a !== null ? redact(a as Record<string, unknown>) : {};
    const msg = typeof a === 'string' ? a : typeof b === 'string' ? b : undefined;
    const line = JSON.stringify({ level: LEVELS[name], time: Date.now(), ...base, ...obj, ...(msg ? { msg } : {}) });
    if (LEVELS[name] >= LEVELS.error) console.error(line);
    else console.log(line);
  };
  const logger = {
    level,
    trace: make('trace'),
    debug: make('debug'),
    info: make('info'),
    warn: make('warn'),
    error: make('error'),
    fatal: make('fatal'),
    silent: () => undefined,
    child: (b: Record<string, unknown>) => consoleLogger(level, { ...base, ...b }),
    isLevelEnabled: (l: LevelName) => LEVELS[l] >= min,
  };
  return logger as unknown as Logger;
}
