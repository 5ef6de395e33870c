// text_cross_test: demo/text.js (the page's JavaScript replica of the text
// CRDT) against crdt/text.cc, through tests/demo/text_cross_driver.
//
//   node text_cross_test.mjs --driver PATH --pako PATH/pako.esm.mjs
//   MERIDIAN_HISTORIES=n   random histories (default 60, about 15 s)
//   MERIDIAN_SEED=s        base seed (history i uses seed s + i)
//
// 1. Random concurrent histories (seeded): 3-5 replicas whose node names
//    order differently as UTF-8 bytes and as UTF-16 (U+1F600 vs U+E000),
//    incarnations past 2^53 (2^53 and 2^53+1 are one double); inserts of
//    ASCII, accented, CJK and astral characters, words and long pastes;
//    typing forwards and backwards, backspacing and forward deleting a
//    key at a time, range deletes across runs of several replicas; every
//    edit's delta is delivered, delayed, reordered, duplicated or lost, so
//    that characters and deletes wait (pending) and deletes meet deleted
//    characters (second deletes); syncs as DeltaSince(the receiver's
//    version, or an older one) and as whole encoded states; a heal at the
//    end after which every replica must hold the same bytes; deltas of
//    C++ Text::Apply (edits at an older version, which make a replica
//    concurrent with itself) merged into the JS replicas. Each history
//    is replayed by JS and by the C++ driver: every delta's bytes, every
//    changed replica's bytes (a hash; whole bytes at checkpoints), its
//    length, versions and contents must be identical. Every encoding the
//    JS made goes through the C++ Text::Decode (the untrusted, canonical
//    check: must accept and re-encode to the same bytes) and every C++
//    encoding is decoded by JS (same content, same bytes again). A
//    failure prints the seed and the history, shortened where that keeps
//    it failing.
// 2. Targeted cases: runs typed concurrently at one place forwards and
//    backwards never interleave, backspacing through typed text, cursors,
//    UTF-16 index conversions, base64url, garbage and deflate bombs given
//    to decode, and the cost of a keystroke in a 20,000-character text.
import { spawnSync } from 'node:child_process';
import { pathToFileURL, fileURLToPath } from 'node:url';
import path from 'node:path';

const here = path.dirname(fileURLToPath(import.meta.url));
const T = await import(pathToFileURL(path.join(here, '../../demo/text.js')).href);
const { Text, TextVersion, utf16ToCodePoints, codePointsToUtf16, bytesToBase64url, base64urlToBytes } = T;

// ------------------------------------------------------------ arguments

function arg(name) {
  const i = process.argv.indexOf(name);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : null;
}
const DRIVER = arg('--driver');
const PAKO = arg('--pako') ?? '/usr/share/nodejs/pako/dist/pako.esm.mjs';
if (!DRIVER) {
  console.error('usage: node text_cross_test.mjs --driver PATH [--pako PATH]');
  process.exit(2);
}
const zlib = await import(pathToFileURL(PAKO).href);
const HISTORIES = Number(process.env.MERIDIAN_HISTORIES ?? 60);
const BASE_SEED = Number(process.env.MERIDIAN_SEED ?? 20260301);
const BATCH = 20;

let passed = 0;
let failed = 0;

function hex(b) {
  return Buffer.from(b).toString('hex');
}
function unhex(s) {
  return new Uint8Array(Buffer.from(s, 'hex'));
}
function fnv(b) {
  let h = 0x811c9dc5;
  for (let i = 0; i < b.length; i++) {
    h ^= b[i];
    h = Math.imul(h, 16777619) >>> 0;
  }
  return h.toString(16).padStart(8, '0');
}

const stats = { applies: 0, histories: 0, ops: 0, packed: 0, pendingSeen: 0, waitingDeletes: 0, secondDeletes: 0, jsToCpp: 0, cppToJs: 0, maxBody: 0 };

function check(cond, what) {
  if (!cond) throw new Error(what);
}

// ------------------------------------------------------------------ PRNG

function prng(seed) {
  let s = seed >>> 0;
  const next = () => {
    // mulberry32
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    f: next,
    int: (n) => Math.floor(next() * n), // 0..n-1
    pick: (a) => a[Math.floor(next() * a.length)],
    chance: (p) => next() < p,
    u64: () => (BigInt(Math.floor(next() * 4294967296)) << 32n) | BigInt(Math.floor(next() * 4294967296)),
  };
}

// ----------------------------------------------------------- the driver

function runDriver(histories, decode = []) {
  const input = JSON.stringify({
    histories: histories.map((h) => ({
      replicas: h.replicas.map((r) => ({ node: r.node, inc: r.incarnation.toString() })),
      full: !!h.full,
      ops: h.ops,
    })),
    decode,
  });
  const res = spawnSync(DRIVER, [], { input, maxBuffer: 1 << 30, encoding: 'utf8' });
  if (res.error) throw res.error;
  if (res.status !== 0) throw new Error('driver exited ' + res.status + ': ' + res.stderr);
  return JSON.parse(res.stdout);
}

// ----------------------------------------------------- the JS replay

// Replays a history in JS; returns {out: records as the driver gives
// them, encodings: [{hex, content}] of every delta and checkpoint state}.
function replayJS(h) {
  const reps = h.replicas.map(() => new Text());
  const msgs = new Map();
  const versions = new Map();
  const out = [];
  const encodings = [];
  const state = (rec, r) => {
    const e = reps[r].encode(zlib);
    if (h.full) rec.e = hex(e);
    else rec.h = fnv(e);
    rec.n = reps[r].length;
  };
  const delta = (rec, d) => {
    rec.d = hex(d.encode(zlib));
    encodings.push({ hex: rec.d, content: d.content() });
  };
  for (const op of h.ops) {
    const rec = {};
    const x = reps[op.r];
    switch (op.t) {
      case 'ins': {
        const p = Math.min(op.p, x.length);
        const d = x.insert(h.replicas[op.r], p, op.s);
        delta(rec, d);
        msgs.set(op.m, d);
        state(rec, op.r);
        break;
      }
      case 'del': {
        const p = Math.min(op.p, x.length);
        const d = x.delete(h.replicas[op.r], p, Math.min(op.n, x.length - p));
        delta(rec, d);
        msgs.set(op.m, d);
        state(rec, op.r);
        break;
      }
      case 'apl': {
        // The C++ Apply's delta (the op carries it), merged here.
        const d = Text.decode(unhex(op.x), zlib);
        x.merge(d);
        delta(rec, d);
        msgs.set(op.m, d);
        state(rec, op.r);
        break;
      }
      case 'dlv': {
        const m = msgs.get(op.m);
        if (m === undefined) {
          rec.skip = true;
        } else {
          x.merge(m);
          state(rec, op.r);
        }
        break;
      }
      case 'snap': {
        const v = x.version();
        rec.v = hex(v.encode());
        versions.set(op.v, v);
        break;
      }
      case 'sd': {
        const v = op.v < 0 ? x.version() : versions.get(op.v) ?? new TextVersion();
        const d = reps[op.f].deltaSince(v);
        delta(rec, d);
        x.merge(d);
        msgs.set(op.m, d);
        state(rec, op.r);
        break;
      }
      case 'st': {
        let copy = null;
        try {
          copy = Text.decode(reps[op.f].encode(zlib), zlib);
        } catch (e) {
          rec.err = 'decode: ' + e.message;
        }
        if (copy !== null) {
          x.merge(copy);
          state(rec, op.r);
        }
        break;
      }
      case 'cp': {
        for (const t of reps) {
          // (Peeking at text.js's internals, for the coverage figures.)
          if (t._extra.size > 0) stats.secondDeletes++;
          if (t._pendingDeletes.length > 0) stats.waitingDeletes++;
        }
        rec.cp = reps.map((t) => {
          const e = hex(t.encode(zlib));
          encodings.push({ hex: e, content: t.content() });
          return { e, c: t.content(), v: hex(t.version().encode()), p: t.pendingCount() > 0 };
        });
        break;
      }
      default:
        throw new Error('unknown op ' + op.t);
    }
    out.push(rec);
  }
  return { out, encodings, reps };
}

// JSON with object keys sorted (the driver's JSON sorts them).
function canonical(v) {
  if (Array.isArray(v)) return '[' + v.map(canonical).join(',') + ']';
  if (v !== null && typeof v === 'object') {
    return '{' + Object.keys(v).sort().map((k) => JSON.stringify(k) + ':' + canonical(v[k])).join(',') + '}';
  }
  return JSON.stringify(v);
}

// The first difference between the JS and C++ records, or null.
function firstDifference(js, cc) {
  for (let i = 0; i < Math.max(js.length, cc.length); i++) {
    const a = canonical(js[i]);
    const b = canonical(cc[i]);
    if (a !== b) return { op: i, js: js[i], cpp: cc[i] };
  }
  return null;
}

// True when the history replays differently in JS and C++ (or fails).
function fails(h) {
  let js;
  try {
    js = replayJS(h).out;
  } catch (e) {
    return true;
  }
  const cc = runDriver([h]).histories[0].out;
  return firstDifference(js, cc) !== null;
}

// Shortens a failing history: drops chunks of ops while it still fails
// (positions clamp and unknown messages are skipped, so any subset
// replays). Bounded in driver runs.
function minimize(h) {
  let ops = h.ops.slice();
  let runs = 0;
  for (let size = Math.max(1, Math.floor(ops.length / 2)); size >= 1 && runs < 400; size = Math.floor(size / 2)) {
    for (let i = 0; i < ops.length && runs < 400; ) {
      const cand = { ...h, ops: ops.slice(0, i).concat(ops.slice(i + size)) };
      runs++;
      if (cand.ops.length > 0 && fails(cand)) ops = cand.ops;
      else i += size;
    }
  }
  return { ...h, ops };
}

function showHistory(h) {
  return JSON.stringify(
    {
      seed: h.seed,
      replicas: h.replicas.map((r) => ({ node: r.node, incarnation: r.incarnation.toString() })),
      ops: h.ops,
    },
    null,
    0,
  ).replace(/\},\{/g, '},\n  {');
}

// --------------------------------------------------- random histories

const NODES = [
  'us-east-1',
  'eu-west-1~0a1b2c3d4e5f',
  'x\u{E000}',
  'x\u{1F600}',
  'x\uFFFD',
  'x\u{10400}',
  'é',
  'e\u0301',
  'Z',
  'ap-south~ff',
  '日本',
];
const INCS = [0n, 1n, 7n, 2n ** 53n, 2n ** 53n + 1n, 2n ** 53n + 2n, 2n ** 63n, 2n ** 64n - 1n];
const ASCII = 'abcdefghijklmnopqrstuvwxyzABCXYZ .,!?0123456789';
const ACCENTED = 'éèêëàâäçñüößøåÉÀÑ';
const CJK = '日本語中文字漢書';
const ASTRAL = ['😀', '🎉', '👍🏽', '𝄞', '🇫🇷', '𐐷', '🙂'];
const WORDS = ['lorem ', 'ipsum ', 'dolor ', 'héllo ', 'wörld ', 'naïve ', '😀 ', '日本語 ', 'Ünïcödé ', 'sit amet, ', 'the ', 'quick '];

function randomChar(g) {
  const k = g.int(10);
  if (k < 5) return g.pick(ASCII);
  if (k < 7) return g.pick(ACCENTED);
  if (k < 8) return g.pick(CJK);
  return g.pick(ASTRAL);
}

function randomText(g, big) {
  const k = g.int(10);
  if (k < 4) return randomChar(g);
  if (k < 7) {
    let s = '';
    const n = 2 + g.int(6);
    for (let i = 0; i < n; i++) s += randomChar(g);
    return s;
  }
  let s = '';
  const n = big || k === 9 ? 5 + g.int(25) : 1 + g.int(4);
  for (let i = 0; i < n; i++) s += g.pick(WORDS);
  return s;
}

function randomReplicas(g) {
  const n = 3 + g.int(3);
  const ids = [];
  const keys = new Set();
  const add = (node, incarnation) => {
    const key = incarnation + ':' + node;
    if (ids.length < n && !keys.has(key)) {
      keys.add(key);
      ids.push({ node, incarnation });
    }
  };
  // Names whose UTF-8 order is not their UTF-16 order, and incarnations
  // that only a BigInt tells apart.
  if (g.chance(0.6)) {
    add('x\u{1F600}', g.pick(INCS));
    add('x\u{E000}', g.pick(INCS));
  }
  if (g.chance(0.4)) {
    // One double: only a BigInt tells them apart.
    const [lo, hi] = g.chance(0.5) ? [2n ** 53n, 2n ** 53n + 1n] : [2n ** 64n - 2n, 2n ** 64n - 1n];
    add('twin', g.chance(0.5) ? lo : hi);
    add('twin', ids[ids.length - 1].incarnation === lo ? hi : lo);
  }
  while (ids.length < n) add(g.pick(NODES), g.chance(0.5) ? g.pick(INCS) : g.u64());
  // Shuffle: replica index carries no meaning.
  for (let i = ids.length - 1; i > 0; i--) {
    const j = g.int(i + 1);
    [ids[i], ids[j]] = [ids[j], ids[i]];
  }
  return ids;
}

// A random history; the generator keeps JS replicas to pick positions.
function randomHistory(seed) {
  const g = prng(seed);
  const replicas = randomReplicas(g);
  const n = replicas.length;
  const big = g.chance(0.35);
  const steps = 40 + g.int(160);
  const live = replicas.map(() => new Text());
  const ops = [];
  const queues = replicas.map(() => []); // message ids on their way to each replica
  const sent = []; // every message id
  let nextMsg = 0;
  let nextVersion = 0;
  const apply = (op) => {
    ops.push(op);
    const x = live[op.r];
    switch (op.t) {
      case 'ins':
        return x.insert(replicas[op.r], Math.min(op.p, x.length), op.s);
      case 'del': {
        const p = Math.min(op.p, x.length);
        return x.delete(replicas[op.r], p, Math.min(op.n, x.length - p));
      }
      default:
        return null;
    }
  };
  const msgs = new Map();
  // An edit's delta: each other replica gets it now, later, twice or never.
  const send = (from, m, d) => {
    msgs.set(m, d);
    sent.push(m);
    for (let j = 0; j < n; j++) {
      if (j === from) continue;
      const k = g.int(100);
      if (k < 15) {
        ops.push({ t: 'dlv', r: j, m });
        live[j].merge(d);
      } else if (k < 65) {
        queues[j].push(m);
      } else if (k < 80) {
        queues[j].push(m, m);
      } // else lost
    }
  };
  const edit = (op) => {
    op.m = nextMsg++;
    const d = apply(op);
    send(op.r, op.m, d);
  };
  const versions = [];
  for (let step = 0; step < steps; step++) {
    const k = g.int(100);
    const r = g.int(n);
    const x = live[r];
    if (k < 30) {
      edit({ t: 'ins', r, p: g.int(x.length + 1), s: randomText(g, big) });
    } else if (k < 36) {
      // Typing a key at a time: forwards, or backwards at one place.
      let p = g.int(x.length + 1);
      const forwards = g.chance(0.6);
      const keys = 2 + g.int(10);
      for (let i = 0; i < keys; i++) {
        edit({ t: 'ins', r, p, s: randomChar(g) });
        if (forwards) p++;
      }
    } else if (k < 50) {
      if (x.length === 0) continue;
      const p = g.int(x.length);
      const len = 1 + g.int(g.chance(0.2) ? 40 : 8);
      edit({ t: 'del', r, p, n: Math.min(len, x.length - p) });
    } else if (k < 55) {
      // Backspacing or forward deleting a key at a time.
      if (x.length === 0) continue;
      let p = 1 + g.int(x.length);
      const back = g.chance(0.6);
      const keys = 1 + g.int(8);
      for (let i = 0; i < keys && p > 0 && live[r].length > 0; i++) {
        if (back) {
          edit({ t: 'del', r, p: p - 1, n: 1 });
          p--;
        } else {
          edit({ t: 'del', r, p: Math.min(p, live[r].length - 1), n: 1 });
        }
      }
    } else if (k < 77) {
      // A delivery, in any order.
      if (queues[r].length === 0) continue;
      const i = g.int(queues[r].length);
      const m = queues[r].splice(i, 1)[0];
      ops.push({ t: 'dlv', r, m });
      x.merge(msgs.get(m));
    } else if (k < 84) {
      let f = g.int(n);
      if (f === r) f = (f + 1) % n;
      const old = versions.length > 0 && g.chance(0.25) ? g.pick(versions) : null;
      const m = nextMsg++;
      ops.push({ t: 'sd', f, r, v: old === null ? -1 : old.id, m });
      const d = live[f].deltaSince(old === null ? x.version() : old.v);
      x.merge(d);
      msgs.set(m, d);
      sent.push(m);
    } else if (k < 88) {
      let f = g.int(n);
      if (f === r) f = (f + 1) % n;
      ops.push({ t: 'st', f, r });
      try {
        x.merge(Text.decode(live[f].encode(zlib), zlib));
      } catch (e) {
        // Replayed (and compared with C++) below.
      }
    } else if (k < 92) {
      const id = nextVersion++;
      ops.push({ t: 'snap', r, v: id });
      versions.push({ id, r, len: x.length, v: x.version() });
    } else if (k < 95) {
      // Edits at one of r's older versions (C++ Apply; the driver makes
      // the delta, which JS merges).
      const mine = versions.filter((v) => v.r === r);
      if (mine.length === 0) continue;
      const at = g.pick(mine);
      let len = at.len;
      const e = [];
      for (let i = 1 + g.int(3); i > 0; i--) {
        if (len > 0 && g.chance(0.4)) {
          const p = g.int(len);
          const n = 1 + g.int(Math.min(10, len - p));
          e.push({ i: false, p, n });
          len -= n;
        } else {
          const s = randomText(g, big);
          e.push({ i: true, p: g.int(len + 1), s });
          len += Array.from(s).length;
        }
      }
      const op = { t: 'apl', r, v: at.id, e, m: nextMsg++ };
      const rec = runDriver([{ replicas, ops: ops.concat([op]) }]).histories[0].out.pop();
      if (rec.err !== undefined || rec.d === undefined) throw new Error('the C++ Apply refuses ' + JSON.stringify(op) + ': ' + rec.err);
      op.x = rec.d;
      ops.push(op);
      const d = Text.decode(unhex(op.x), zlib);
      x.merge(d);
      send(r, op.m, d);
      stats.applies++;
    } else if (k < 98) {
      // An old message again, to anyone.
      if (sent.length === 0) continue;
      const m = g.pick(sent);
      ops.push({ t: 'dlv', r, m });
      x.merge(msgs.get(m));
    } else {
      ops.push({ t: 'cp' });
    }
  }
  // Heal: what is on its way arrives, then everything flows through
  // replica 0 and back.
  for (let j = 0; j < n; j++) {
    while (queues[j].length > 0) {
      const m = queues[j].splice(g.int(queues[j].length), 1)[0];
      ops.push({ t: 'dlv', r: j, m });
      live[j].merge(msgs.get(m));
    }
  }
  ops.push({ t: 'cp' });
  for (let j = 1; j < n; j++) {
    const m = nextMsg++;
    ops.push({ t: 'sd', f: j, r: 0, v: -1, m });
    live[0].merge(live[j].deltaSince(live[0].version()));
  }
  for (let j = 1; j < n; j++) {
    const m = nextMsg++;
    ops.push({ t: 'sd', f: 0, r: j, v: -1, m });
    live[j].merge(live[0].deltaSince(live[j].version()));
  }
  ops.push({ t: 'cp' });
  return { seed, replicas, ops, converge: true };
}

// ------------------------------------------------ running histories


function reportFailure(h, what) {
  failed++;
  console.error(`FAIL (seed ${h.seed}): ${what}`);
  if (h.seed !== undefined && h.seed !== null) {
    console.error(`  rerun: MERIDIAN_SEED=${h.seed} MERIDIAN_HISTORIES=1`);
    let m = h;
    try {
      if (fails(h)) m = minimize(h);
    } catch (e) {
      console.error('  (minimizing failed: ' + e.message + ')');
    }
    const full = { ...m, full: true };
    let detail = '';
    try {
      const js = replayJS(full).out;
      const cc = runDriver([full]).histories[0].out;
      detail = JSON.stringify(firstDifference(js, cc));
    } catch (e) {
      detail = 'JS replay throws: ' + (e.stack || e);
    }
    console.error(`  history (${m.ops.length} of ${h.ops.length} ops):\n  ${showHistory(m)}`);
    console.error(`  first difference (full bytes): ${detail}`);
  }
}

// Runs histories in one driver call with their encodings cross-decoded.
function runBatch(hs) {
  const js = [];
  for (const h of hs) {
    try {
      js.push(replayJS(h));
    } catch (e) {
      js.push({ error: e });
    }
  }
  const decodeList = [];
  const contentOf = new Map();
  for (const r of js) {
    if (r.error) continue;
    for (const { hex: e, content } of r.encodings) {
      if (!contentOf.has(e)) {
        contentOf.set(e, content);
        decodeList.push(e);
      }
    }
  }
  const res = runDriver(hs, decodeList);
  for (let i = 0; i < hs.length; i++) {
    const h = hs[i];
    stats.histories++;
    stats.ops += h.ops.length;
    if (js[i].error) {
      reportFailure(h, 'JS replay throws: ' + (js[i].error.stack || js[i].error));
      continue;
    }
    const cc = res.histories[i].out;
    const diff = firstDifference(js[i].out, cc);
    if (diff !== null) {
      reportFailure(h, `op ${diff.op} (${JSON.stringify(h.ops[diff.op])}) differs: JS ${JSON.stringify(diff.js)} C++ ${JSON.stringify(diff.cpp)}`);
      continue;
    }
    let ok = true;
    // C++ encodings decode in JS to the same content and bytes.
    for (const rec of cc) {
      const states = [];
      if (rec.d) states.push({ e: rec.d });
      if (rec.cp) states.push(...rec.cp);
      for (const s of states) {
        stats.cppToJs++;
        try {
          const t = Text.decode(unhex(s.e), zlib);
          check(hex(t.encode(zlib)) === s.e, 'a C++ encoding re-encodes differently in JS: ' + s.e);
          if (s.c !== undefined) check(t.content() === s.c, 'a C++ encoding decodes to other content in JS');
        } catch (e) {
          reportFailure(h, 'JS decode of C++ bytes: ' + e.message);
          ok = false;
          break;
        }
        if (s.e.startsWith('019301')) stats.packed++;
      }
      if (!ok) break;
    }
    if (!ok) continue;
    // Convergence after the heal.
    if (h.converge) {
      const last = cc[cc.length - 1].cp;
      if (!last.every((s) => s.e === last[0].e && !s.p)) {
        reportFailure(h, 'replicas differ (or wait) after the heal: ' + JSON.stringify(last.map((s) => [s.c, s.p])));
        continue;
      }
    }
    for (const r of js[i].reps) {
      stats.maxBody = Math.max(stats.maxBody, r.encode(zlib).length);
    }
    for (const o of js[i].out) {
      if (o.cp) {
        for (const s of o.cp) {
          if (s.p) stats.pendingSeen++;
        }
      }
    }
    passed++;
  }
  // JS encodings through the C++ Text::Decode.
  for (let k = 0; k < decodeList.length; k++) {
    const d = res.decode[k];
    stats.jsToCpp++;
    if (!d.ok || d.e !== decodeList[k] || d.c !== contentOf.get(decodeList[k])) {
      failed++;
      console.error(`FAIL: the C++ Text::Decode of a JS encoding: ${JSON.stringify(d)} for ${decodeList[k]}`);
    }
  }
}

// --------------------------------------------------- targeted cases

const A = { node: 'a-node', incarnation: 1n };
const B = { node: 'b-node', incarnation: 1n };
const C = { node: 'c-node', incarnation: 1n };

function targeted(name, f) {
  try {
    f();
    passed++;
  } catch (e) {
    failed++;
    console.error(`FAIL ${name}: ${e.stack || e}`);
  }
}

// A hand-written history through both sides, compared op by op.
function crossHistory(name, replicas, ops, after) {
  const h = { seed: null, replicas, ops, full: true };
  const js = replayJS(h);
  const cc = runDriver([h]).histories[0].out;
  const diff = firstDifference(js.out, cc);
  check(diff === null, `${name}: JS and C++ differ at op ${diff && diff.op}: ${JSON.stringify(diff)}`);
  if (after) after(js.reps, cc);
}

function typeOps(r, at, s, backwards, msgBase) {
  const ops = [];
  let p = at;
  let m = msgBase;
  for (const ch of s) {
    ops.push({ t: 'ins', r, p, s: ch, m: m++ });
    if (!backwards) p += 1;
  }
  return ops;
}

function syncAll(n, msgBase) {
  const ops = [];
  let m = msgBase;
  for (let j = 1; j < n; j++) ops.push({ t: 'sd', f: j, r: 0, v: -1, m: m++ });
  for (let j = 1; j < n; j++) ops.push({ t: 'sd', f: 0, r: j, v: -1, m: m++ });
  ops.push({ t: 'cp' });
  return ops;
}

targeted('runs typed concurrently at one place never interleave', () => {
  for (const [ra, rb, rc] of [
    [A, B, C],
    [{ node: 'x\u{E000}', incarnation: 2n ** 53n + 1n }, { node: 'x\u{1F600}', incarnation: 3n }, { node: 'x\u{E000}', incarnation: 2n ** 53n + 2n }],
    [{ node: 'twin', incarnation: 2n ** 53n + 1n }, { node: 'twin', incarnation: 2n ** 53n }, { node: 'twin', incarnation: 2n ** 64n - 1n }],
  ]) {
    const ops = [{ t: 'ins', r: 0, p: 0, s: '[]', m: 0 }, ...syncAll(3, 1)];
    ops.push(...typeOps(0, 1, 'abcdef', false, 100)); // forwards
    ops.push(...typeOps(1, 1, 'UVWXYZ', false, 200)); // forwards
    ops.push(...typeOps(2, 1, '😀é日🎉ñ!', true, 300)); // backwards: the text ends up reversed
    ops.push(...syncAll(3, 400));
    crossHistory('non-interleaving', [ra, rb, rc], ops, (reps) => {
      const s = reps[0].content();
      check(reps.every((t) => t.content() === s), 'replicas differ');
      const inner = s.slice(1, -1);
      for (const run of ['abcdef', 'UVWXYZ', Array.from('😀é日🎉ñ!').reverse().join('')]) {
        check(inner.includes(run), `run ${run} interleaved in ${s}`);
      }
    });
  }
});

targeted('backspacing and forward deleting through typed text', () => {
  const ops = [];
  ops.push(...typeOps(0, 0, 'The quick brown fox jumps over the lazy dog 😀', false, 0));
  ops.push(...syncAll(2, 100));
  let m = 200;
  // A backspaces 12 characters from the end, one key at a time ...
  for (let i = 0; i < 12; i++) ops.push({ t: 'del', r: 0, p: 45 - 1 - i, n: 1, m: m++ });
  // ... and forward-deletes 5 at position 4; B concurrently deletes a
  // range overlapping both (second deletes), then types into the gap.
  for (let i = 0; i < 5; i++) ops.push({ t: 'del', r: 0, p: 4, n: 1, m: m++ });
  ops.push({ t: 'del', r: 1, p: 2, n: 40, m: m++ });
  ops.push(...typeOps(1, 2, 'ïñ', false, 300));
  ops.push(...syncAll(2, 400));
  ops.push({ t: 'ins', r: 0, p: 3, s: 'again', m: 500 });
  ops.push({ t: 'del', r: 0, p: 0, n: 4, m: 501 });
  ops.push(...syncAll(2, 600));
  crossHistory('backspacing', [A, B], ops, (reps) => {
    check(reps[0].content() === reps[1].content(), 'replicas differ');
  });
});

targeted('deltas arriving before their origins wait, then apply', () => {
  // B gets A's edits in reverse order: every insert waits for its left
  // origin, the delete waits for its character.
  const ops = [];
  ops.push(...typeOps(0, 0, 'wxyz', false, 0));
  ops.push({ t: 'del', r: 0, p: 1, n: 2, m: 10 });
  ops.push({ t: 'dlv', r: 1, m: 10 }, { t: 'cp' });
  for (const m of [3, 2, 1]) ops.push({ t: 'dlv', r: 1, m }, { t: 'cp' });
  ops.push({ t: 'dlv', r: 1, m: 0 }, { t: 'cp' });
  crossHistory('pending', [A, B], ops, (reps, cc) => {
    check(cc[6].cp[1].p === true, 'B waits after the delete arrives first');
    check(reps[1].pendingCount() === 0 && reps[1].content() === 'wz', 'B applies everything at the end: ' + reps[1].content());
  });
});

targeted('concurrent deletes of a waiting character encode alike in any order', () => {
  // D and E lack x; each gets y's tombstone twice, once carrying B's
  // delete and once C's, in opposite orders. Both encode one state: the
  // character carries the smaller dot, the other delete waits beside it.
  const D = { node: 'd-node', incarnation: 1n };
  const E = { node: 'e-node', incarnation: 1n };
  const ops = [
    { t: 'ins', r: 0, p: 0, s: 'x', m: 0 },
    { t: 'dlv', r: 2, m: 0 },
    { t: 'snap', r: 2, v: 1 },
    { t: 'ins', r: 0, p: 1, s: 'y', m: 1 },
    { t: 'dlv', r: 1, m: 0 }, { t: 'dlv', r: 1, m: 1 }, { t: 'dlv', r: 2, m: 1 },
    { t: 'del', r: 1, p: 1, n: 1, m: 10 },
    { t: 'del', r: 2, p: 1, n: 1, m: 11 },
    { t: 'sd', f: 1, r: 3, v: 1, m: 20 }, { t: 'sd', f: 2, r: 3, v: 1, m: 21 },
    { t: 'sd', f: 2, r: 4, v: 1, m: 22 }, { t: 'sd', f: 1, r: 4, v: 1, m: 23 },
    { t: 'cp' },
    { t: 'dlv', r: 3, m: 0 }, { t: 'dlv', r: 4, m: 0 },
    { t: 'cp' },
  ];
  crossHistory('two deletes of a waiting character', [A, B, C, D, E], ops, (reps, cc) => {
    const waiting = cc[13].cp;
    check(waiting[3].e === waiting[4].e, 'D and E encode differently while y waits');
    check(reps[3].content() === 'x' && reps[4].content() === 'x', 'both show x at the end');
  });
});

targeted('cursors keep their place', () => {
  const a = new Text();
  const b = new Text();
  b.merge(a.insert(A, 0, 'hello world'));
  const cur = a.cursorAt(5); // after 'o'
  check(a.cursorPos(cur) === 5, 'cursorPos of a fresh cursor');
  check(a.cursorAt(0) === null && a.cursorPos(null) === 0, 'cursor at 0');
  a.merge(b.insert(B, 0, '😀😀'));
  check(a.cursorPos(cur) === 7, 'an insert before moves it: ' + a.cursorPos(cur));
  a.merge(b.insert(B, 9, 'XYZ')); // after the cursor's place
  check(a.cursorPos(cur) === 7, 'an insert after does not');
  a.merge(b.delete(B, 5, 3)); // 'llo' incl. the cursor's character
  check(a.cursorPos(cur) === 5, 'its character deleted: where the tombstone sits: ' + a.cursorPos(cur));
  const c2 = Text.decode(a.encode(zlib), zlib);
  check(c2.cursorPos(cur) === 5, 'cursors survive a decode');
});

targeted('UTF-16 index conversions', () => {
  const s = 'a😀b🇫🇷c';
  // UTF-16: a=0, 😀=1,2, b=3, 🇫=4,5, 🇷=6,7, c=8
  const cp = [0, 1, 1, 2, 3, 3, 4, 4, 5, 6];
  for (let i = 0; i <= s.length; i++) check(utf16ToCodePoints(s, i) === cp[i], `utf16ToCodePoints(${i}) = ${utf16ToCodePoints(s, i)}`);
  const u = [0, 1, 3, 4, 6, 8, 9];
  for (let i = 0; i < u.length; i++) check(codePointsToUtf16(s, i) === u[i], `codePointsToUtf16(${i})`);
  check(codePointsToUtf16(s, 99) === s.length && utf16ToCodePoints(s, 99) === 6, 'past the end clamps');
  // Positions of the API are code points.
  const t = new Text();
  t.insert(A, 0, s);
  check(t.length === 6, 'length counts code points');
  t.insert(A, utf16ToCodePoints(s, 3), 'X');
  check(t.content() === 'a😀Xb🇫🇷c', 'insert at a converted index');
  t.delete(A, 1, 1);
  check(t.content() === 'aXb🇫🇷c', 'delete of an astral character');
  let threw = false;
  try {
    t.insert(A, 0, 'bad\uD800');
  } catch {
    threw = true;
  }
  check(threw && t.content() === 'aXb🇫🇷c', 'a lone surrogate is refused and changes nothing');
  threw = false;
  try {
    t.insert(A, 99, 'x');
  } catch {
    threw = true;
  }
  check(threw, 'a position past the end is refused');
});

targeted('base64url', () => {
  const g = prng(7);
  for (let n = 0; n < 40; n++) {
    const b = new Uint8Array(n).map(() => g.int(256));
    const s = bytesToBase64url(b);
    check(!/[=+/]/.test(s) && s === Buffer.from(b).toString('base64url'), 'encoding of ' + n + ' bytes');
    check(hex(base64urlToBytes(s)) === hex(b), 'round trip of ' + n + ' bytes');
  }
  for (const bad of ['A', 'AB=', 'A+B/', 'AB C', 'AE', 'AAB', 'é']) {
    let threw = false;
    try {
      base64urlToBytes(bad);
    } catch {
      threw = true;
    }
    check(threw, 'refuses ' + JSON.stringify(bad));
  }
});

targeted('versions', () => {
  const a = new Text();
  const b = new Text();
  b.merge(a.insert(A, 0, 'abc'));
  b.insert(B, 1, 'x');
  check(b.version().covers(a.version()) && !a.version().covers(b.version()), 'covers');
  const v = a.version();
  v.merge(b.version());
  check(v.equals(b.version()), 'merge');
  check(TextVersion.decode(v.encode()).equals(v), 'encode / decode');
  check(hex(b.deltaSince(a.version()).encode(zlib)) === hex(b.deltaSince(v.covers(a.version()) ? a.version() : v).encode(zlib)), 'deltaSince');
});

targeted('decode refuses garbage with an Error, quickly', () => {
  const g = prng(11);
  const t = new Text();
  for (let i = 0; i < 60; i++) t.insert(i % 2 ? A : B, g.int(t.length + 1), randomText(g, true));
  t.delete(A, 3, 40);
  const samples = [t.encode(zlib), t.insert(C, 5, 'xyz').encode(zlib), new Text().encode(zlib)];
  check(samples[0].length > 100 && samples[0][2] === 1, 'a packed sample');
  const start = Date.now();
  let accepted = 0;
  for (let k = 0; k < 3000; k++) {
    const s = samples[k % samples.length];
    const b = s.slice();
    const kind = g.int(3);
    if (kind === 0) b[g.int(b.length)] ^= 1 << g.int(8);
    else if (kind === 1) b[g.int(b.length)] = g.int(256);
    let input = kind === 2 ? b.subarray(0, g.int(b.length)) : b;
    try {
      const d = Text.decode(input, zlib);
      d.encode(zlib);
      d.content();
      accepted++;
    } catch (e) {
      check(e instanceof Error && /^text: |^text version/.test(e.message), 'an Error saying text: ..., not ' + e);
    }
  }
  // Bodies of another body's packed bytes and a deflate bomb.
  const bomb = zlib.deflate(new Uint8Array(50 << 20));
  const w = [0x01, 0x93, 0x01, 0xce, 0x02, 0xff, 0xff, 0xff, 0xc6, (bomb.length >>> 24) & 255, (bomb.length >>> 16) & 255, (bomb.length >>> 8) & 255, bomb.length & 255];
  const bytes = new Uint8Array(w.length + bomb.length);
  bytes.set(w);
  bytes.set(bomb, w.length);
  let threw = false;
  try {
    Text.decode(bytes, zlib);
  } catch (e) {
    threw = /does not inflate|claims/.test(e.message);
  }
  check(threw, 'a deflate bomb is refused');
  // A zlib without pako's streaming Inflate: the plain inflate path.
  const plain = { deflate: (b, o) => zlib.deflate(b, o), inflate: (b) => zlib.inflate(b) };
  check(hex(Text.decode(samples[0], plain).encode(plain)) === hex(samples[0]), 'decode with a plain inflate');
  threw = false;
  try {
    Text.decode(bytes, plain);
  } catch (e) {
    threw = /does not inflate|claims/.test(e.message);
  }
  check(threw, 'a deflate bomb is refused with a plain inflate too');
  check(Date.now() - start < 20000, 'garbage decodes in bounded time');
});

targeted('a keystroke in a 20,000-character text costs well under a millisecond', () => {
  const t = new Text();
  const g = prng(3);
  let s = '';
  while (s.length < 20000) s += g.pick(WORDS);
  t.insert(A, 0, s.slice(0, 20000));
  const other = new Text();
  other.merge(t.deltaSince(new TextVersion()));
  const n = 2000;
  let p = g.int(t.length);
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    if (i % 100 === 0) p = g.int(t.length);
    const d = i % 10 === 9 ? t.delete(A, p - 1, 1) : t.insert(A, p, randomChar(g));
    if (i % 10 === 9) p--;
    else p++;
    bytesToBase64url(d.encode(zlib));
  }
  const per = (performance.now() - t0) / n;
  // A remote delta into a 20,000-character text.
  const t1 = performance.now();
  other.merge(t.deltaSince(other.version()));
  const merge = performance.now() - t1;
  check(other.content() === t.content(), 'the other replica caught up');
  console.log(`keystroke (edit + delta encode) in a 20,000-character text: ${per.toFixed(3)} ms; merging ${n} keystrokes' delta: ${merge.toFixed(1)} ms`);
  check(per < 2, 'a keystroke takes ' + per.toFixed(3) + ' ms');
});

// -------------------------------------------------------------- main

const t0 = Date.now();
const all = [];
for (let i = 0; i < HISTORIES; i++) all.push(randomHistory(BASE_SEED + i));
for (let i = 0; i < all.length; i += BATCH) runBatch(all.slice(i, i + BATCH));
const secs = ((Date.now() - t0) / 1000).toFixed(1);
console.log(
  `text_cross_test: ${stats.histories} histories (seeds ${BASE_SEED}..${BASE_SEED + HISTORIES - 1}), ${stats.ops} ops in ${secs} s; ` +
    `${stats.cppToJs} C++ encodings decoded in JS, ${stats.jsToCpp} JS encodings through Text::Decode, ` +
    `${stats.packed} packed, ${stats.applies} C++ Apply deltas merged; checkpoint states: ${stats.pendingSeen} with waiting edits, ${stats.waitingDeletes} with waiting deletes, ` +
    `${stats.secondDeletes} with second deletes; largest state ${stats.maxBody} bytes`,
);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
