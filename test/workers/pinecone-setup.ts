/**
 * Global setup of the workerd-pinecone project (Node side): the local Pinecone data-plane emulator
 * (test/index/pinecone-emulator.ts) the Worker reaches over 127.0.0.1, a stand-in for the live service. Its host
 * and key are provided to the project's Worker bindings (vitest.config.ts) and stopped after the run.
 */
import type { TestProject } from 'vitest/node';
import { PineconeEmulator } from '../index/pinecone-emulator.js';

declare module 'vitest' {
  export interface ProvidedContext {
    pineconeHost: string;
    pineconeApiKey: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const emulator = new PineconeEmulator({ apiKey: 'workerd-test-key' });
  project.provide('pineconeHost', await emulator.start());
  project.provide('pineconeApiKey', emulator.apiKey);
  return () => emulator.stop();
}
