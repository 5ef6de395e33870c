// Prints `./dev bench text`'s table: Meridian's text CRDT beside Yjs and
// diamond-types-node on one trace, from the one-line JSON each replay
// printed (bench/text_trace --json; bench/text_peers/replay.mjs), with our
// ratios and issue 7's targets.
//
//   node bench/text_peers/compare.mjs OURS.json DT.json YJS.json
//
// Exits 1 when a replay was not ok (its text differed from endContent).
import { readFileSync } from 'node:fs';

const [oursPath, dtPath, yjsPath] = process.argv.slice(2);
if (!yjsPath) {
  console.error('usage: compare.mjs OURS.json DT.json YJS.json');
  process.exit(2);
}
const read = (p) => JSON.parse(readFileSync(p, 'utf8').trim().split('\n').pop());
const ours = read(oursPath), dt = read(dtPath), yjs = read(yjsPath);

const ms = (v) => `${v.toFixed(1)} ms`;
const kb = (v) => `${(v / 1024).toFixed(1)} KiB`;
const mb = (v) => `${(v / (1024 * 1024)).toFixed(2)} MiB`;
const ratio = (a, b) => (b > 0 ? `${(a / b).toFixed(2)}x` : 'n/a');
const rows = [
  ['apply (all ops)', 'apply_ms', ms],
  ['memory held by the document', 'doc_bytes_in_memory', mb],
  ['encoded size', 'encoded_bytes', kb],
  ['decode and read', 'load_ms', ms],
];
// load_ms is how a node reads a document it stored (DecodeTrusted);
// load_verified_ms, Meridian alone, how it reads bytes from elsewhere
// (Decode: the order re-derived from the origins and checked).
const pad = (s, n) => String(s).padEnd(n);
console.log(`trace: ${ours.ops} ops; every replay ok: ${ours.ok && dt.ok && yjs.ok}`);
console.log(
  pad('figure', 30) + pad('meridian', 14) + pad('diamond-types', 15) + pad('yjs', 14) +
    pad('meridian/dt', 13) + 'meridian/yjs',
);
for (const [name, key, fmt] of rows) {
  console.log(
    pad(name, 30) + pad(fmt(ours[key]), 14) + pad(fmt(dt[key]), 15) + pad(fmt(yjs[key]), 14) +
      pad(ratio(ours[key], dt[key]), 13) + ratio(ours[key], yjs[key]),
  );
}
if (ours.load_verified_ms !== undefined) {
  console.log(pad('decode and read, verified', 30) + ms(ours.load_verified_ms));
}
const targets = [
  ['apply time <= 0.5x diamond-types-node', ours.apply_ms <= 0.5 * dt.apply_ms],
  ['encoded size <= diamond-types', ours.encoded_bytes <= dt.encoded_bytes],
  ['decode and read <= 20 ms', ours.load_ms <= 20],
  ['memory held by the document <= 10 MB', ours.doc_bytes_in_memory <= 10 * 1000 * 1000],
];
console.log('targets (issue 7):');
for (const [what, met] of targets) console.log(`  ${met ? 'met   ' : 'MISSED'} ${what}`);
process.exit(ours.ok && dt.ok && yjs.ok ? 0 : 1);
