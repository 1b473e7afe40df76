// Builds the viewer's third-party files from node_modules into vendor/, which the pages load
// (no CDN): OpenSeadragon as published, and Neuroglancer bundled by esbuild from its npm
// package (an ES module tree that needs a bundler) into vendor/neuroglancer/, with a page
// that opens the state in its address (#!{...}). Run by `npm run build` after `npm ci`;
// scripts/install-deps does both when vendor/ is missing or older than package-lock.json.
import { cpSync, mkdirSync, rmSync, writeFileSync, existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

const here = dirname(fileURLToPath(import.meta.url));
const modules = join(here, 'node_modules');
const osd = join(modules, 'openseadragon', 'build', 'openseadragon');
const ng = join(modules, 'neuroglancer', 'lib');
const vendor = join(here, 'vendor');
const versionOf = (name) => JSON.parse(readFileSync(join(modules, name, 'package.json'), 'utf8')).version;

for (const f of [join(osd, 'openseadragon.min.js'), join(ng, 'main.bundle.js')]) {
  if (!existsSync(f)) {
    console.error(`build: ${f} is missing: run "npm ci" in ${here} first`);
    process.exit(1);
  }
}
rmSync(vendor, { recursive: true, force: true });
mkdirSync(join(vendor, 'openseadragon'), { recursive: true });
for (const f of ['openseadragon.min.js', 'openseadragon.min.js.map']) {
  if (existsSync(join(osd, f))) cpSync(join(osd, f), join(vendor, 'openseadragon', f));
}
cpSync(join(osd, 'images'), join(vendor, 'openseadragon', 'images'), { recursive: true });

// Neuroglancer imports its icons as "ikonate/icons/NAME.svg?raw" (text). The npm release of
// ikonate (package.json's override of Neuroglancer's git dependency, which npm alone cannot
// fetch) lacks a few; those get a plain square.
const rawText = {
  name: 'raw-text',
  setup(build) {
    build.onResolve({ filter: /\?raw$/ }, async (args) => {
      const r = await build.resolve(args.path.replace(/\?raw$/, ''), { resolveDir: args.resolveDir, kind: args.kind });
      return r.errors.length ? { path: args.path, namespace: 'missing-icon' } : { path: r.path, namespace: 'raw-text' };
    });
    build.onLoad({ filter: /.*/, namespace: 'raw-text' }, (args) => ({ contents: readFileSync(args.path, 'utf8'), loader: 'text' }));
    build.onLoad({ filter: /.*/, namespace: 'missing-icon' }, () => ({
      contents: '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24"><rect x="5" y="5" width="14" height="14" ' +
                'fill="none" stroke="currentColor" stroke-width="2"/></svg>',
      loader: 'text',
    }));
  },
};
// Its workers are found next to the main bundle by URL (new URL("./chunk_worker.bundle.js")
// and, from lib/async_computation/, "../async_computation.bundle.js"): the outputs keep
// those places.
await esbuild.build({
  entryPoints: {
    'neuroglancer/main.bundle': join(ng, 'main.bundle.js'),
    'neuroglancer/chunk_worker.bundle': join(ng, 'chunk_worker.bundle.js'),
    'async_computation.bundle': join(ng, 'async_computation.bundle.js'),
  },
  outdir: vendor,
  bundle: true,
  format: 'esm',
  minify: true,
  target: 'chrome120',
  loader: { '.wasm': 'file', '.svg': 'text', '.png': 'file', '.woff': 'file', '.woff2': 'file', '.ttf': 'file' },
  define: { 'process.env.NODE_ENV': '"production"' },
  plugins: [rawText],
  logLevel: 'error',
});
writeFileSync(join(vendor, 'neuroglancer', 'index.html'), `<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Tessera: Neuroglancer</title>
  <link rel="icon" href="data:,">
  <link rel="stylesheet" href="main.bundle.css">
  <style>html, body { margin: 0; height: 100%; overflow: hidden; background: #000; }</style>
  <script type="module" src="main.bundle.js"></script>
</head>
<body></body>
</html>
`);

// The stamp scripts/install-deps compares with package-lock.json.
const versions = `openseadragon ${versionOf('openseadragon')}\nneuroglancer ${versionOf('neuroglancer')}\n`;
writeFileSync(join(vendor, 'STAMP'), versions);
console.log(`build: vendor/ ready (${versions.trim().replace(/\n/g, ', ')})`);
