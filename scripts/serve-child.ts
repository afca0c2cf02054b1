/**
 * `manyfold serve` as a child process, the way a user runs it (the bin), for measurement scripts that need a
 * server under test: resolves with its URL once it listens; `stop` sends SIGTERM and waits for the exit.
 */
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface ServeChild {
  url: string;
  stop(): Promise<void>;
}

export async function startServeChild(opts: { model: string; workDir: string; adminKey: string; config?: Record<string, unknown> }): Promise<ServeChild> {
  const args = ['bin/manyfold.js', 'serve', '--model', opts.model, '--data', join(opts.workDir, 'data'), '--port', '0'];
  if (opts.config) {
    const file = join(opts.workDir, 'config.json');
    writeFileSync(file, JSON.stringify(opts.config));
    args.push('--config', file);
  }
  const proc = spawn(process.execPath, args, {
    env: { ...process.env, MANYFOLD_API_KEYS: `${opts.adminKey}=admin`, MANYFOLD_LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const url = await new Promise<string>((ok, fail) => {
    let out = '';
    proc.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      const m = /manyfold API on (http:\/\/[^\s]+)/.exec(out);
      if (m) ok(m[1]);
    });
    proc.once('exit', (code) => fail(new Error(`manyfold serve exited ${code} before listening`)));
  });
  return {
    url,
    stop: async () => {
      if (proc.exitCode !== null) return;
      const exited = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGTERM');
      await exited;
    },
  };
}
