// Copies the viewer's third-party files from node_modules into vendor/, which the page loads
// (no CDN). Run by `npm run build` after `npm ci`; scripts/install-deps does both when
// vendor/ is missing or older than package-lock.json.
import { cpSync, mkdirSync, rmSync, writeFileSync, existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const osd = join(here, 'node_modules', 'openseadragon', 'build', 'openseadragon');
const vendor = join(here, 'vendor');

if (!existsSync(join(osd, 'openseadragon.min.js'))) {
  console.error(`build: ${osd}/openseadragon.min.js is missing: run "npm ci" in ${here} first`);
  process.exit(1);
}
rmSync(vendor, { recursive: true, force: true });
mkdirSync(join(vendor, 'openseadragon'), { recursive: true });
for (const f of ['openseadragon.min.js', 'openseadragon.min.js.map']) {
  if (existsSync(join(osd, f))) cpSync(join(osd, f), join(vendor, 'openseadragon', f));
}
cpSync(join(osd, 'images'), join(vendor, 'openseadragon', 'images'), { recursive: true });
const version = JSON.parse(readFileSync(join(here, 'node_modules', 'openseadragon', 'package.json'), 'utf8')).version;
// The stamp scripts/install-deps compares with package-lock.json.
writeFileSync(join(vendor, 'STAMP'), `openseadragon ${version}\n`);
console.log(`build: vendor/openseadragon (OpenSeadragon ${version}) ready`);
