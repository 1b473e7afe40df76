// Reads images of a slide through the gateway's Zarr v3 / OME-Zarr 0.5 routes with zarrita (the
// reader vizarr and other web viewers use: plain GETs and range requests, Blosc decoded by
// numcodecs.js), and writes each level's pixels as raw little-endian files for the caller to
// compare with the stored slide (tests/verify_zarr.py --zarrita DIR).
//
//   node tests/browser/zarrita_test.mjs GATEWAY_URL TOKEN OUT_DIR s000001/fields/0 s000001:fused ...
//
// Writes OUT_DIR/<path with "/" and ":" as "_">/<level>.bin and shape.json; exits 1 on any error.
import * as zarr from "zarrita";
import { mkdirSync, writeFileSync } from "node:fs";

const [url, token, out, ...paths] = process.argv.slice(2);
if (!paths.length) {
  console.error("usage: zarrita_test.mjs GATEWAY_URL TOKEN OUT_DIR IMAGE_PATH...");
  process.exit(2);
}
const headers = token ? { Authorization: `Bearer ${token}` } : {};

for (const path of paths) {
  const store = new zarr.FetchStore(`${url}/zarr3/${path}`, { overrides: { headers } });
  const root = zarr.root(store);
  const group = await zarr.open.v3(root, { kind: "group" });
  const ome = group.attrs.ome;
  if (ome?.version !== "0.5") throw new Error(`${path}: attributes.ome.version is ${ome?.version}, not 0.5`);
  const datasets = ome.multiscales[0].datasets;
  const dir = `${out}/${path.replaceAll("/", "_").replaceAll(":", "_")}`;
  mkdirSync(dir, { recursive: true });
  const shapes = [];
  for (const { path: level } of datasets) {
    const array = await zarr.open.v3(root.resolve(level), { kind: "array" });
    const { data, shape } = await zarr.get(array);
    writeFileSync(`${dir}/${level}.bin`, Buffer.from(data.buffer, data.byteOffset, data.byteLength));
    shapes.push(shape);
  }
  // A suffix range, as a shard index is read: the last 16 bytes of level 0's first chunk.
  const key = "/0/c/0/0/0/0";
  const whole = await store.get(key);
  const tail = await store.getRange(key, { suffixLength: 16 });
  if (!whole || !tail || Buffer.compare(Buffer.from(whole.subarray(whole.length - 16)), Buffer.from(tail)) !== 0) {
    throw new Error(`${path}: the suffix range of ${key} is not the chunk's last 16 bytes`);
  }
  writeFileSync(`${dir}/shape.json`, JSON.stringify(shapes));
  console.log(`zarrita read ${path}: ${datasets.length} levels, level 0 ${shapes[0].join(" x ")}`);
}
