// Replays a sequential text-editing trace (e.g. automerge-paper.json.gz, format in
// /work/shared/data/traces/README.md) into a JavaScript text CRDT and prints one JSON
// line with the figures our C++ text CRDT is compared against:
//
//   node --expose-gc bench/text_peers/replay.mjs --peer yjs|dt [--runs N] TRACE.json.gz
//
//   ops                  patches applied; each [pos, numDeleted, insertedText] patch
//                        counts as ONE op (a delete plus an insert in one patch is one op).
//   apply_ms             wall time (performance.now) of applying every patch to a fresh
//                        doc through the peer's public JS API, one call per insert/delete
//                        (for dt that includes the JS->wasm call and string copy per patch;
//                        wasm compile/instantiate happens at import, before any timing).
//                        MEDIAN over --runs runs (default 3) in this process.
//   doc_bytes_in_memory  growth of process.memoryUsage() heapUsed + external between a
//                        gc() before building the doc and a gc() after applying, with the
//                        doc still alive; measured on the FIRST run, after a warm-up on the
//                        first 1000 patches so compiled code is not counted. `arrayBuffers`
//                        is not added: Node already counts it inside `external`. dt's wasm
//                        linear memory is counted inside `external` too (checked: growing
//                        the Memory by 64 MiB raises `external` by 64 MiB); it only grows in
//                        64 KiB pages and never shrinks, which is why only the first run is
//                        measured.
//   encoded_bytes        yjs: Y.encodeStateAsUpdate(doc).length, the V1 encoding, with the
//                        default gc: true, so deleted text is not kept (the V2 encoding,
//                        encodeStateAsUpdateV2, is about half the size).
//                        dt: doc.toBytes().length (diamond-types' ENCODE_FULL: every
//                        inserted character, deleted ones included, lz4-compressed; no
//                        deleted-content copy; the JS API offers no other options).
//   load_ms              time to build a fresh doc from those bytes and read its text
//                        (yjs: new Y.Doc + Y.applyUpdate + toString; dt: Doc.fromBytes +
//                        get). MEDIAN over the runs.
//   ok                   applied text == endContent and loaded text == endContent, every run.
//
// Trace positions count Unicode code points. dt takes code points; Yjs takes UTF-16 code
// units, so patches are converted for Yjs before timing (exactly; a no-op when the trace
// has no astral characters). The trace is loaded and converted before any measurement.
//
// Packages come from $MERIDIAN_PEERS_DIR (default <repo>/bench/peers), filled by
// bench/text_peers/install.sh.
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { performance } from 'node:perf_hooks';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const peersDir = process.env.MERIDIAN_PEERS_DIR || path.resolve(here, '..', '..', 'bench', 'peers');
const requirePeer = createRequire(path.join(peersDir, 'package.json'));

function usage(msg) {
  console.error(`${msg}\nusage: node --expose-gc replay.mjs --peer yjs|dt [--runs N] TRACE.json.gz`);
  process.exit(2);
}

let peerName, tracePath, runs = 3;
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  if (argv[i] === '--peer') peerName = argv[++i];
  else if (argv[i] === '--runs') runs = Number(argv[++i]);
  else if (!tracePath && !argv[i].startsWith('--')) tracePath = argv[i];
  else usage(`unknown argument ${argv[i]}`);
}
if (!['yjs', 'dt'].includes(peerName)) usage('--peer must be yjs or dt');
if (!tracePath) usage('missing trace path');
if (!Number.isInteger(runs) || runs < 1) usage('--runs must be a positive integer');
if (typeof global.gc !== 'function') usage('run node with --expose-gc');

const trace = JSON.parse(gunzipSync(readFileSync(tracePath)).toString('utf8'));
if (trace.startContent) usage('non-empty startContent is not supported');
const cpPatches = trace.txns.flatMap((t) => t.patches);

// Code-point patches -> UTF-16 patches. utf16(p) = p + number of astral characters before
// code point p; `astral` keeps the code-point positions of astral characters in the
// document, sorted, so ASCII/BMP-only documents cost nothing.
function toUtf16(patches) {
  const astral = [];
  return patches.map(([pos, del, text]) => {
    if (astral.length === 0 && !/[\uD800-\uDFFF]/.test(text)) return [pos, del, text];
    const before = astral.filter((a) => a < pos).length;
    const inDel = astral.filter((a) => a >= pos && a < pos + del).length;
    const cps = Array.from(text);
    const kept = astral.filter((a) => a < pos || a >= pos + del)
      .map((a) => (a < pos ? a : a - del + cps.length));
    cps.forEach((c, i) => { if (c.length === 2) kept.push(pos + i); });
    astral.splice(0, astral.length, ...kept.sort((x, y) => x - y));
    return [pos + before, del + inDel, text];
  });
}

const peers = {
  yjs() {
    const Y = requirePeer('yjs');
    return {
      patches: toUtf16(cpPatches),
      build(patches) {
        const doc = new Y.Doc();
        const text = doc.getText('text');
        for (const [pos, del, ins] of patches) {
          if (del > 0) text.delete(pos, del);
          if (ins !== '') text.insert(pos, ins);
        }
        return doc;
      },
      text: (doc) => doc.getText('text').toString(),
      encode: (doc) => Y.encodeStateAsUpdate(doc),
      load(bytes) {
        const doc = new Y.Doc();
        Y.applyUpdate(doc, bytes);
        return doc.getText('text').toString();
      },
      free(doc) { doc.destroy(); },
    };
  },
  dt() {
    const { Doc } = requirePeer('diamond-types-node'); // compiles + instantiates the wasm here
    return {
      patches: cpPatches,
      build(patches) {
        const doc = new Doc('bench');
        for (const [pos, del, ins] of patches) {
          if (del > 0) doc.del(pos, del);
          if (ins !== '') doc.ins(pos, ins);
        }
        return doc;
      },
      text: (doc) => doc.get(),
      encode: (doc) => doc.toBytes(),
      load(bytes) {
        const doc = Doc.fromBytes(bytes, 'bench');
        const s = doc.get();
        doc.free();
        return s;
      },
      free(doc) { doc.free(); },
    };
  },
};

const peer = peers[peerName]();
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)];
// Buffers (e.g. the gunzipped trace) are released only once the event loop turns, so
// collect, yield, collect again before reading.
const usedBytes = async () => {
  for (let i = 0; i < 3; i++) {
    global.gc();
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  const m = process.memoryUsage();
  return m.heapUsed + m.external; // external already includes arrayBuffers and wasm memory
};

peer.free(peer.build(peer.patches.slice(0, 1000))); // warm-up, not measured

const applyMs = [], loadMs = [];
let docBytes, encodedBytes, ok = true;
for (let run = 0; run < runs; run++) {
  const before = await usedBytes();
  const t0 = performance.now();
  let doc = peer.build(peer.patches);
  applyMs.push(performance.now() - t0);
  if (run === 0) docBytes = (await usedBytes()) - before;
  ok &&= peer.text(doc) === trace.endContent;

  const bytes = peer.encode(doc);
  encodedBytes = bytes.length;
  peer.free(doc);
  doc = null;

  const t1 = performance.now();
  const loaded = peer.load(bytes);
  loadMs.push(performance.now() - t1);
  ok &&= loaded === trace.endContent;
}

const round = (x) => Math.round(x * 100) / 100;
console.log(JSON.stringify({
  peer: peerName,
  ops: peer.patches.length,
  apply_ms: round(median(applyMs)),
  doc_bytes_in_memory: docBytes,
  encoded_bytes: encodedBytes,
  load_ms: round(median(loadMs)),
  ok,
  runs,
}));
