#!/usr/bin/env node
// Launcher: registers tsx's loader in this process and imports the TypeScript CLI, so `manyfold` is one process.
// SIGTERM / SIGINT from systemd, Docker, Kubernetes or a job scheduler reach the server or training run itself
// (a child process would be orphaned when only its launcher got the signal).
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { register } from 'tsx/esm/api';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
register();
await import(pathToFileURL(join(root, 'src/cli/main.ts')).href);
