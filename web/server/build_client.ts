/**
 * Bundles the page (`web/client/main.ts` + `livekit-client` + the shared `lib/context` tracker)
 * with esbuild into `web/public/app.js` (git-ignored). `npm run web:build` runs it; the token
 * service runs it at start-up; the browser test runs it itself.
 *
 * The bundle is minified (with a source map beside it) unless `--no-minify` is given.
 *
 *   tsx web/server/build_client.ts [--no-minify]
 */
import { existsSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

function findRepoRoot(from: string): string {
  for (let dir = from; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    if (dirname(dir) === dir) return from;
  }
}

/** Repository root (works from the sources and from `dist/`). */
export const REPO_ROOT = findRepoRoot(dirname(fileURLToPath(import.meta.url)));
/** Where the static page lives (`index.html`, `app.css`; `app.js` is built). */
export const PUBLIC_DIR = join(REPO_ROOT, 'web', 'public');

/** Options of {@link buildClient}. */
export interface BuildClientOptions {
  /** @default true */
  minify?: boolean;
  /** Output directory. @default PUBLIC_DIR */
  outDir?: string;
}

/** Result of {@link buildClient}. */
export interface BuildClientResult {
  outFile: string;
  bytes: number;
  ms: number;
}

/** Bundles the page script. esbuild is a dev dependency: imported only when building. */
export async function buildClient({ minify = true, outDir = PUBLIC_DIR }: BuildClientOptions = {}): Promise<BuildClientResult> {
  const started = Date.now();
  const esbuild = await import('esbuild');
  const entry = join(REPO_ROOT, 'web', 'client', 'main.ts');
  const outFile = join(outDir, 'app.js');
  await esbuild.build({
    entryPoints: [entry],
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: ['es2022', 'chrome110', 'firefox110', 'safari16'],
    outfile: outFile,
    sourcemap: true,
    minify,
    legalComments: 'none',
    logLevel: 'warning',
    define: { 'process.env.NODE_ENV': JSON.stringify(minify ? 'production' : 'development') },
  });
  return { outFile, bytes: statSync(outFile).size, ms: Date.now() - started };
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const r = await buildClient({ minify: !process.argv.includes('--no-minify') });
  process.stdout.write(`web:build: ${r.outFile} (${Math.round(r.bytes / 1024)} KiB, ${r.ms} ms)\n`);
}
