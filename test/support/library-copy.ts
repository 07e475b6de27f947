import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type * as Library from '../../src/index.js';

/**
 * A second copy of the library in this process: the source tree copied to a temporary folder
 * and imported from there, so that it is a separate module graph with its own module-level state,
 * as the ESM and the CommonJS build of the package are when an application loads both.
 * `dispose` removes the folder.
 */
export async function loadLibraryCopy(): Promise<{ library: typeof Library; dispose: () => void }> {
  const dir = mkdtempSync(join(tmpdir(), 'event-history-copy-'));
  cpSync(resolve(__dirname, '../../src'), join(dir, 'src'), { recursive: true });
  const library = (await import(/* @vite-ignore */ join(dir, 'src/index.ts'))) as typeof Library;
  return { library, dispose: () => rmSync(dir, { recursive: true, force: true }) };
}
