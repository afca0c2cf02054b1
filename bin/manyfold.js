#!/usr/bin/env node
// Launcher: runs the TypeScript CLI in this same process through tsx's loader (one process, so signals such as
// SIGTERM/SIGKILL from a scheduler reach the job itself, not a wrapper).
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const loader = pathToFileURL(join(root, 'node_modules', 'tsx', 'dist', 'loader.mjs')).href;
const r = spawnSync(process.execPath, ['--import', loader, join(root, 'src/cli/main.ts'), ...process.argv.slice(2)], { stdio: 'inherit' });
process.exit(r.status ?? (r.signal ? 128 : 1));
