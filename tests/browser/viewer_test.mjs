#!/usr/bin/env node
// End-to-end test of the viewer page (web/) in Debian's chromium, through a running gateway.
//
//   node viewer_test.mjs URL SLIDE [TOKEN [VOLUME]]  e.g. node viewer_test.mjs http://127.0.0.1:8080 s000001 f0dd... s000002
//   TESSERA_URL=... TESSERA_SLIDE=... node viewer_test.mjs
//
// Opens URL/?token=TOKEN#SLIDE (as `tessera up` prints it), waits for the viewer's ready signal (window.tessera), then checks that
//   * the tiles drawn on the OpenSeadragon canvas are not blank,
//   * the scale bar shows a length,
//   * hovering the image shows the cursor's position (pixels, µm) and the raw values under it,
//     without a request per mouse event,
//   * turning channel 0 off changes the picture, and turning every channel off makes it black,
//   * for VOLUME (a light-sheet volume): the z slider shows, the plane drawn is not blank and
//     moving in z changes it, the XZ section beside it is drawn and not blank, and Neuroglancer,
//     opened from the page's link on the volume's precomputed view, renders non-blank planes, and
//     so it does on the volume's OME-Zarr views (zarr2:// and zarr3://).
// Screenshots go to $TESSERA_ARTIFACTS (default: the current folder): viewer.png and
// viewer-channel0-off.png. Exit code 0 on success; 1 with the reasons on failure; 2 on usage.
//
// Environment: CHROMIUM (default /usr/bin/chromium), TESSERA_TIMEOUT_MS (per step, default 60000).
import { existsSync, mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { chromium } from 'playwright-core';

const baseUrl = (process.argv[2] || process.env.TESSERA_URL || '').replace(/\/+$/, '');
const slide = process.argv[3] || process.env.TESSERA_SLIDE || '';
// The gateway's token: the page is opened the way `tessera up` prints it (?token=), and must
// keep it (the gateway sets a cookie) for every request it makes after.
const token = process.argv[4] || process.env.TESSERA_TOKEN || '';
const volume = process.argv[5] || process.env.TESSERA_VOLUME || '';
if (!baseUrl || !slide) {
  console.error('usage: node viewer_test.mjs URL SLIDE   (or TESSERA_URL and TESSERA_SLIDE)');
  process.exit(2);
}
const artifacts = resolve(process.env.TESSERA_ARTIFACTS || '.');
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
const stepTimeout = Number(process.env.TESSERA_TIMEOUT_MS || 60000);

const t0 = Date.now();
const log = (msg) => console.log(`[viewer_test ${((Date.now() - t0) / 1000).toFixed(1)}s] ${msg}`);

class TestFailure extends Error {}
function check(condition, message) {
  if (!condition) throw new TestFailure(message);
}

// What the page did, for the failure report.
const consoleLines = [];
const pageErrors = [];
const failedRequests = [];

// Reads the main OpenSeadragon canvas back (the 2D drawer's canvas, not the navigator's):
// size, the fraction of pixels that are not black, the mean colour, and a coarse grid of
// luminances to compare two renderings.
function canvasStats() {
  const hook = window.tessera;
  const canvas = (hook && hook.viewer && hook.viewer.drawer && hook.viewer.drawer.canvas) ||
    document.querySelector('#viewer .openseadragon-canvas canvas');
  if (!canvas || !canvas.getContext) return { error: 'no OpenSeadragon canvas on the page' };
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  if (!ctx) return { error: 'the OpenSeadragon canvas is not a 2D canvas (drawer is not "canvas")' };
  const { width, height } = canvas;
  if (!width || !height) return { error: `the canvas is empty (${width} x ${height})` };
  let data;
  try {
    data = ctx.getImageData(0, 0, width, height).data;
  } catch (e) {
    return { error: `cannot read the canvas back: ${e.message}` };
  }
  let nonBlack = 0, r = 0, g = 0, b = 0;
  const n = width * height;
  for (let i = 0; i < data.length; i += 4) {
    r += data[i]; g += data[i + 1]; b += data[i + 2];
    if (data[i] + data[i + 1] + data[i + 2] > 24) nonBlack++;
  }
  const step = 8;
  const grid = [];
  for (let y = step >> 1; y < height; y += step) {
    for (let x = step >> 1; x < width; x += step) {
      const i = (y * width + x) * 4;
      grid.push(Math.round((data[i] + data[i + 1] + data[i + 2]) / 3));
    }
  }
  return { width, height, nonBlack: nonBlack / n, mean: [r / n, g / n, b / n], grid };
}

function describe(stats) {
  return `${stats.width}x${stats.height}, ${(stats.nonBlack * 100).toFixed(1)}% non-black, ` +
    `mean rgb ${stats.mean.map((v) => v.toFixed(1)).join('/')}`;
}

async function stats(page, what) {
  const s = await page.evaluate(canvasStats);
  check(!s.error, `${what}: ${s.error}`);
  return s;
}

// Changes a setting and waits until the page has drawn the new rendering.
async function changeAndWait(page, action, what) {
  const before = await page.evaluate(() => window.tessera.drawn);
  await action();
  try {
    await page.waitForFunction((n) => window.tessera.drawn > n && !window.tessera.busy, before, { timeout: stepTimeout });
  } catch (e) {
    const h = await page.evaluate(() => ({ drawn: window.tessera.drawn, busy: window.tessera.busy, tileErrors: window.tessera.tileErrors, error: window.tessera.error }));
    throw new TestFailure(`${what}: the new rendering was not drawn within ${stepTimeout} ms (${JSON.stringify(h)})`);
  }
}

async function run(browser) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, deviceScaleFactor: 1 });
  const page = await context.newPage();
  page.setDefaultTimeout(stepTimeout);
  page.on('console', (m) => consoleLines.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => pageErrors.push(String(e && e.stack ? e.stack : e)));
  page.on('response', (r) => { if (r.status() >= 400) failedRequests.push(`${r.status()} ${r.url()}`); });
  page.on('requestfailed', (r) => {
    const why = r.failure() ? r.failure().errorText : 'failed';
    if (why !== 'net::ERR_ABORTED') failedRequests.push(`${why} ${r.url()}`);
  });

  const target = `${baseUrl}/${token ? `?token=${encodeURIComponent(token)}` : ''}#${encodeURIComponent(slide)}`;
  log(`opening ${target}`);
  const response = await page.goto(target, { waitUntil: 'domcontentloaded' });
  check(response && response.ok(), `GET ${baseUrl}/ answered ${response ? response.status() : 'nothing'}: is the gateway started with --web?`);

  // 1. Ready: the selected slide's first tiles are drawn.
  try {
    await page.waitForFunction(() => window.tessera && (window.tessera.state === 'ready' || window.tessera.state === 'error'),
      null, { timeout: stepTimeout });
  } catch (e) {
    const h = await page.evaluate(() => (window.tessera ? { state: window.tessera.state, slide: window.tessera.slide, error: window.tessera.error } : 'no window.tessera'));
    throw new TestFailure(`the viewer was not ready within ${stepTimeout} ms: ${JSON.stringify(h)}`);
  }
  const hook = await page.evaluate(() => ({ state: window.tessera.state, slide: window.tessera.slide, error: window.tessera.error, query: window.tessera.query() }));
  check(hook.state === 'ready', `the viewer failed: ${hook.error}`);
  check(hook.slide === slide, `the viewer opened ${hook.slide}, not ${slide}`);
  log(`ready: ${slide}, tiles carry ?${hook.query}`);

  // 2. The tiles are not blank.
  const shown = await stats(page, 'first rendering');
  log(`canvas: ${describe(shown)}`);
  await page.locator('#viewer').screenshot({ path: resolve(artifacts, 'viewer.png') });
  check(shown.nonBlack > 0.05, `the drawn tiles are blank: only ${(shown.nonBlack * 100).toFixed(2)}% of the canvas is not black`);
  const lo = Math.min(...shown.grid), hi = Math.max(...shown.grid);
  check(hi - lo > 16, `the drawn tiles are flat (luminance ${lo}..${hi}): not an image`);

  // 3. The scale bar.
  const scale = (await page.locator('#scalebar-label').textContent({ timeout: stepTimeout })).trim();
  check(await page.locator('#scalebar').isVisible(), 'the scale bar is hidden');
  check(/^\d+(\.\d+)?\s(nm|µm|mm)$/.test(scale), `the scale bar says "${scale}", not a length in nm, µm or mm`);
  const barWidth = await page.locator('#scalebar-bar').evaluate((e) => e.getBoundingClientRect().width);
  check(barWidth >= 20 && barWidth <= 200, `the scale bar is ${barWidth} px wide`);
  log(`scale bar: ${scale} (${Math.round(barWidth)} px)`);

  // 4. The cursor readout: position at once, values from the gateway, throttled.
  const box = await page.locator('#viewer .openseadragon-canvas').first().boundingBox();
  check(box && box.width > 100 && box.height > 100, `the viewer's canvas is too small: ${JSON.stringify(box)}`);
  const requestsBefore = await page.evaluate(() => window.tessera.pixelRequests);
  const movesStart = Date.now();
  await page.mouse.move(box.x + box.width * 0.2, box.y + box.height * 0.3);
  await page.mouse.move(box.x + box.width * 0.5, box.y + box.height * 0.5, { steps: 40 });
  const movesMs = Date.now() - movesStart;
  const readout = async () => page.evaluate(() => ({
    px: document.getElementById('cursor-px').textContent,
    um: document.getElementById('cursor-um').textContent,
    values: document.getElementById('cursor-values').textContent,
  }));
  try {
    await page.waitForFunction(() => /^x \d+, y \d+$/.test(document.getElementById('cursor-px').textContent) &&
      /\d/.test(document.getElementById('cursor-values').textContent), null, { timeout: stepTimeout });
  } catch (e) {
    throw new TestFailure(`the cursor readout did not show a position and values: ${JSON.stringify(await readout())}`);
  }
  // Let the last position's values arrive, then check they are the last position's.
  await page.waitForFunction(() => {
    const v = document.getElementById('cursor-values').textContent;
    return /\d/.test(v) && !/outside/.test(v);
  }, null, { timeout: stepTimeout });
  const first = await readout();
  check(/^x [\d.]+, y [\d.]+$/.test(first.um), `the cursor's position in µm reads "${first.um}"`);
  const requests = (await page.evaluate(() => window.tessera.pixelRequests)) - requestsBefore;
  // The page asks at most every 120 ms: allow one per 100 ms the moves took, and a few more.
  const allowed = Math.min(40, Math.ceil(movesMs / 100) + 3);
  check(requests >= 1 && requests <= allowed,
    `41 mouse moves in ${movesMs} ms made ${requests} pixel requests (want 1..${allowed}: throttled)`);
  log(`cursor: ${first.px} | ${first.um} µm | ${first.values} (${requests} pixel requests for 41 moves in ${movesMs} ms)`);
  await page.mouse.move(box.x + box.width * 0.3, box.y + box.height * 0.6, { steps: 5 });
  try {
    await page.waitForFunction((old) => document.getElementById('cursor-px').textContent !== old, first.px, { timeout: stepTimeout });
  } catch (e) {
    throw new TestFailure(`the cursor readout did not follow the mouse: still "${first.px}"`);
  }
  const second = await readout();
  log(`cursor moved: ${second.px} | ${second.um} µm`);
  // Park the mouse off the image so that nothing hovers over what is compared next.
  await page.mouse.move(1, 1);

  // 5. Channel 0 off changes the picture.
  check(await page.locator('#channel-0-on').isChecked(), 'channel 0 is not on by default');
  await changeAndWait(page, () => page.locator('#channel-0-on').uncheck(), 'channel 0 off');
  const off = await stats(page, 'channel 0 off');
  const query = await page.evaluate(() => window.tessera.query());
  log(`channel 0 off: ${describe(off)}; tiles carry ?${query}`);
  await page.locator('#viewer').screenshot({ path: resolve(artifacts, 'viewer-channel0-off.png') });
  const onList = new URLSearchParams(query).get('channels');
  check(onList !== null && !onList.split(',').includes('0'), `the tile URLs do not leave channel 0 out: ?${query}`);
  check(off.width === shown.width && off.height === shown.height, 'the canvas changed size between the renderings');
  let changed = 0;
  for (let i = 0; i < shown.grid.length; i++) if (Math.abs(shown.grid[i] - off.grid[i]) > 8) changed++;
  const changedFraction = changed / shown.grid.length;
  const meanDelta = shown.mean.reduce((s, v, i) => s + Math.abs(v - off.mean[i]), 0);
  log(`channel 0 off changed ${(changedFraction * 100).toFixed(1)}% of the sampled pixels (mean rgb moved by ${meanDelta.toFixed(1)})`);
  check(changedFraction > 0.02, `turning channel 0 off changed only ${(changedFraction * 100).toFixed(2)}% of the picture`);

  // 6. Every channel off: black ("channels=" with nothing on).
  const channelCount = await page.locator('#channels input[type="checkbox"]').count();
  // One switch at a time, each waited for: a draw of an earlier switch must not pass for the last.
  for (let c = 1; c < channelCount; c++) {
    await changeAndWait(page, () => page.locator(`#channel-${c}-on`).uncheck(), `channel ${c} off`);
  }
  const none = await stats(page, 'every channel off');
  log(`every channel off: ${describe(none)}`);
  check(none.nonBlack < 0.01, `with every channel off the picture is not black: ${(none.nonBlack * 100).toFixed(1)}% lit`);

  // 7. Back on: the first picture again.
  for (let c = 0; c < channelCount; c++) {
    await changeAndWait(page, () => page.locator(`#channel-${c}-on`).check(), `channel ${c} back on`);
  }
  const again = await stats(page, 'every channel back on');
  let same = 0;
  for (let i = 0; i < shown.grid.length; i++) if (Math.abs(shown.grid[i] - again.grid[i]) <= 8) same++;
  check(same / shown.grid.length > 0.95, `with every channel back on the picture differs from the first: ${describe(again)}`);
  log('every channel back on: the first picture again');

  if (volume) await checkVolume(context, page);
  check(pageErrors.length === 0, `the page threw:\n  ${pageErrors.join('\n  ')}`);
  await context.close();
}

// Stats of a picture given as a data URL (an <img> or a screenshot), drawn on a 2D canvas.
async function pictureStats(page, dataUrl) {
  return page.evaluate(async (url) => {
    const img = new Image();
    img.src = url;
    await img.decode();
    const c = document.createElement('canvas');
    c.width = img.naturalWidth;
    c.height = img.naturalHeight;
    const ctx = c.getContext('2d');
    ctx.drawImage(img, 0, 0);
    const d = ctx.getImageData(0, 0, c.width, c.height).data;
    // Lit pixels; and grey ones that are neither black nor a panel's flat grey: a volume's data.
    let lit = 0, data = 0;
    const distinct = new Set(), greys = new Set();
    for (let i = 0; i < d.length; i += 4) {
      if (d[i] + d[i + 1] + d[i + 2] > 24) lit++;
      if (i % 64 === 0) distinct.add((d[i] >> 4) * 256 + (d[i + 1] >> 4) * 16 + (d[i + 2] >> 4));
      const grey = d[i] === d[i + 1] && d[i + 1] === d[i + 2];
      if (grey && d[i] > 40 && Math.abs(d[i] - 128) > 3) {
        data++;
        greys.add(d[i]);
      }
    }
    const n = c.width * c.height;
    return { width: c.width, height: c.height, nonBlack: lit / n, distinct: distinct.size, data: data / n, greys: greys.size };
  }, dataUrl);
}

async function checkVolume(context, page) {
  await page.evaluate((id) => { location.hash = `#${id}`; }, volume);
  await page.waitForFunction((id) => window.tessera.slide === id && window.tessera.state === 'ready' && !window.tessera.busy,
    volume, { timeout: stepTimeout });
  check(await page.locator('#z-row').isVisible(), 'the z slider is not shown for a volume');
  const max = Number(await page.locator('#z-slider').getAttribute('max'));
  check(max === 47, `the z slider spans 0..${max}, not the volume's 48 planes`);
  const middle = await stats(page, 'the volume\'s middle plane');
  check(middle.nonBlack > 0.05, `the volume's middle plane is blank: ${describe(middle)}`);
  await changeAndWait(page, () => page.locator('#z-slider').fill('4'), 'moving to plane 4');
  check((await page.evaluate(() => window.tessera.query())).includes('z=4'), 'the tiles do not carry z=4');
  const other = await stats(page, 'plane 4');
  let differ = 0;
  for (let i = 0; i < middle.grid.length; i++) if (Math.abs(middle.grid[i] - other.grid[i]) > 8) differ++;
  check(differ / middle.grid.length > 0.05, `moving in z did not change the picture (${differ} of ${middle.grid.length} samples)`);
  log(`volume ${volume}: plane 4 differs from the middle one at ${(100 * differ / middle.grid.length).toFixed(0)}% of samples`);
  // The XZ section beside the plane.
  await page.waitForFunction(() => window.tessera.sectionsDrawn > 0, null, { timeout: stepTimeout });
  const src = await page.locator('#xz-view').evaluate(async (img) => {
    const c = document.createElement('canvas');
    c.width = img.naturalWidth;
    c.height = img.naturalHeight;
    c.getContext('2d').drawImage(img, 0, 0);
    return c.toDataURL('image/png');
  });
  const xz = await pictureStats(page, src);
  check(xz.width > 100 && xz.height > 10 && xz.nonBlack > 0.05, `the XZ section is blank or empty: ${JSON.stringify(xz)}`);
  log(`XZ section ${xz.width}x${xz.height}, ${(xz.nonBlack * 100).toFixed(0)}% lit`);
  await page.screenshot({ path: resolve(artifacts, 'viewer-volume.png') });
  // Neuroglancer, from the page's link, on the volume's precomputed view.
  const href = await page.locator('#neuroglancer-link').getAttribute('href');
  check(href && href.startsWith('vendor/neuroglancer/index.html#!'), `no Neuroglancer link: ${href}`);
  const precomputed = await neuroglancerRenders(context, page, new URL(href, `${baseUrl}/`).href, 'neuroglancer-volume.png');
  log(`Neuroglancer (precomputed): ${(precomputed.data * 100).toFixed(1)}% of its window shows the volume's data, ${precomputed.greys} grey levels`);
  // And on the OME-Zarr views (v2 and v3): Blosc chunks, as Neuroglancer's zarr source decodes them.
  const state = JSON.parse(decodeURIComponent(href.slice(href.indexOf('#!') + 2)));
  for (const [scheme, route] of [['zarr2', 'zarr'], ['zarr3', 'zarr3']]) {
    state.layers[0].source = `${scheme}://${baseUrl}/${route}/${encodeURIComponent(volume)}/`;
    const url = `${baseUrl}/vendor/neuroglancer/index.html#!${encodeURIComponent(JSON.stringify(state))}`;
    const shot = await neuroglancerRenders(context, page, url, `neuroglancer-${scheme}.png`);
    log(`Neuroglancer (${scheme}://): ${(shot.data * 100).toFixed(1)}% of its window shows the volume's data, ${shot.greys} grey levels`);
  }
}

// Opens Neuroglancer at `url` in a new page and waits until it draws the volume's data (grey
// levels of the data in its panels, windowed as the viewer page windows them); its screenshot
// goes to `name`.
async function neuroglancerRenders(context, page, url, name) {
  const ng = await context.newPage();
  ng.on('pageerror', (e) => pageErrors.push(`neuroglancer: ${e}`));
  await ng.goto(url, { waitUntil: 'load' });
  const deadline = Date.now() + stepTimeout;
  let shot = null;
  while (Date.now() < deadline) {
    await ng.waitForTimeout(1000);
    const png = await ng.screenshot({ type: 'png' });
    shot = await pictureStats(page, `data:image/png;base64,${png.toString('base64')}`);
    if (shot.data > 0.01 && shot.greys > 30) break;
  }
  await ng.screenshot({ path: resolve(artifacts, name) });
  check(shot && shot.data > 0.01 && shot.greys > 30, `Neuroglancer rendered nothing of the volume (${name}): ${JSON.stringify(shot)}`);
  await ng.close();
  return shot;
}

async function main() {
  mkdirSync(artifacts, { recursive: true });
  if (!existsSync(executablePath)) {
    console.error(`viewer_test: FAIL: no browser at ${executablePath} (apt-get install chromium, or set CHROMIUM)`);
    return 1;
  }
  // WebGL (Neuroglancer) on the CPU: there is no GPU here.
  const browser = await chromium.launch({ executablePath, headless: true, timeout: stepTimeout,
    args: ['--no-sandbox', '--use-angle=swiftshader', '--enable-unsafe-swiftshader', '--ignore-gpu-blocklist'] });
  log(`chromium ${browser.version()}`);
  try {
    await run(browser);
    log(`PASS (screenshots in ${artifacts})`);
    return 0;
  } catch (e) {
    console.error(`viewer_test: FAIL: ${e instanceof TestFailure ? e.message : (e && e.stack) || e}`);
    if (pageErrors.length) console.error(`page errors:\n  ${pageErrors.join('\n  ')}`);
    if (failedRequests.length) console.error(`failed requests (first 20 of ${failedRequests.length}):\n  ${failedRequests.slice(0, 20).join('\n  ')}`);
    if (consoleLines.length) console.error(`browser console (last 30):\n  ${consoleLines.slice(-30).join('\n  ')}`);
    console.error(`screenshots, if taken, are in ${artifacts}`);
    return 1;
  } finally {
    await browser.close().catch(() => {});
  }
}

main().then((code) => process.exit(code), (e) => {
  console.error(`viewer_test: FAIL: ${(e && e.stack) || e}`);
  process.exit(1);
});
