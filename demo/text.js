// text.js: a JavaScript replica of Meridian's text CRDT (crdt/text.h,
// crdt/text.cc), for the live editing page and for node.
//
// What it mirrors. The same state and the same rules as the C++ Text:
// every character has an id (replica, counter), a left and a right origin;
// concurrent insertions between the same origins are ordered by FugueMax
// (ties by replica id — node string compared as UTF-8 BYTES, then the
// incarnation — then counter); deleted characters stay as tombstones that
// keep the dot of their first delete (the smallest), later deletes of one
// character go to `extra`; characters whose origins are not here yet wait
// (pending runs), and so do deletes of absent characters (pending
// deletes). insert/delete/merge/deltaSince/version follow Text::Insert,
// Delete, Merge, DeltaSince and version() step for step, and encode()
// gives the same bytes as Text::Encode() (msgpack in its shortest forms,
// varint columns, runs joined as PushJoined joins them, bodies of 512
// bytes or more deflated at level 6 when that is smaller), so a page and
// the C++ node exchange states and deltas byte for byte
// (tests/demo/text_cross_test.mjs checks that against the C++ code).
//
// What it leaves out. Text::Apply (edits at an older version) and
// DeleteAll: the page edits at its current version (a C++ Apply's delta
// merges here like any other). decode() is DecodeTrusted's counterpart,
// not Decode's: it checks structure, bounds, UTF-8, dots and that every
// origin is on its side of its character, but takes the document order as
// the bytes give it (they come from the C++ node) and does not check that
// they are canonical. In memory a character is one object in chunked
// arrays (the demo's documents are small), not a run in a B+ tree; so
// pendingCount() counts this replica's own waiting records, which are zero
// exactly when the C++ PendingCount() is, but may be another number
// otherwise. A decoded state may hold at most 2^22 characters (tombstones
// included).
//
// Exports: Text, TextVersion, utf16ToCodePoints, codePointsToUtf16,
// bytesToBase64url, base64urlToBytes.
//
// Replica ids are {node: string, incarnation: BigInt} (a decimal string
// or a safe integer is taken too; the node is at most 256 bytes of UTF-8,
// as the C++ decoder allows). Positions and lengths count Unicode code
// points (a surrogate pair is one), as the C++ API does;
// utf16ToCodePoints / codePointsToUtf16 convert a textarea's UTF-16
// indices. Compression is passed in: zlib = {deflate(Uint8Array),
// inflate(Uint8Array)} in zlib format (pako works: pako's deflate at level
// 6 is byte-identical to zlib's compress2(..., 6), node's built-in zlib is
// not); when it has pako's streaming `Inflate` class that is used, so that
// a deflate bomb is cut off at the size the body claims. Errors are thrown
// (Error, or TypeError / RangeError for bad arguments); a refused edit
// changes nothing.
//
//   import * as pako from './pako.esm.mjs';
//   const doc = Text.decode(base64urlToBytes(hello.state), pako);
//   const delta = doc.insert(agent, pos, 'x');   // agent: {node, incarnation}
//   send({type: 'ops', seq, state: bytesToBase64url(delta.encode(pako))});
//   doc.merge(Text.decode(base64urlToBytes(ops.state), pako));
//
// No imports: it runs as an ES module in a browser page and in node.

// ------------------------------------------------------------ limits

const MAX_COUNTER = 0xfffffff0; // per replica: counters fit 32 bits
const MAX_INSERT_BYTES = 16 << 20; // one insert's UTF-8
const MAX_WAITING_DELETE_CHARS = 1 << 20; // as Text::Decode
const MAX_NODE_BYTES = 256;
const COMPRESS_ABOVE = 512;
const MAX_BODY_BYTES = 256 << 20;
const MAX_DECODE_BYTES = 1 << 30;
// Characters (tombstones and waiting ones included) a decoded state may
// hold: this replica keeps one object per character.
const MAX_DECODED_CHARS = 1 << 22;
const FORMAT_VERSION = 1;
const TWO32 = 4294967296;

const NONE = -1; // "no replica": no origin, not deleted

function bad(what) {
  return new Error('text: ' + what);
}

// ------------------------------------------------------ UTF-8 / UTF-16

const utf8Encoder = new TextEncoder();
const utf8Decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

function utf8(s) {
  return utf8Encoder.encode(s);
}

// Throws unless `s` is a well-formed UTF-16 string (no lone surrogates).
function checkWellFormed(s, what) {
  for (let i = 0; i < s.length; i++) {
    const u = s.charCodeAt(i);
    if (u >= 0xd800 && u <= 0xdbff) {
      const v = i + 1 < s.length ? s.charCodeAt(i + 1) : 0;
      if (v < 0xdc00 || v > 0xdfff) throw new TypeError(what + ' has a lone surrogate at ' + i);
      i++;
    } else if (u >= 0xdc00 && u <= 0xdfff) {
      throw new TypeError(what + ' has a lone surrogate at ' + i);
    }
  }
}

// Code points before UTF-16 index `utf16Index` of `str`; an index inside a
// surrogate pair counts as the pair's start. Indices past the end clamp.
export function utf16ToCodePoints(str, utf16Index) {
  const end = Math.max(0, Math.min(utf16Index, str.length));
  let n = 0;
  for (let i = 0; i < end; i++) {
    const u = str.charCodeAt(i);
    if (u >= 0xd800 && u <= 0xdbff && i + 1 < str.length) {
      const v = str.charCodeAt(i + 1);
      if (v >= 0xdc00 && v <= 0xdfff) {
        if (i + 1 >= end) break; // inside the pair: its start
        i++;
      }
    }
    n++;
  }
  return n;
}

// The UTF-16 index of code point `cpIndex` of `str` (str.length past it).
export function codePointsToUtf16(str, cpIndex) {
  let i = 0;
  for (let n = 0; n < cpIndex && i < str.length; n++) {
    const u = str.charCodeAt(i);
    if (u >= 0xd800 && u <= 0xdbff && i + 1 < str.length) {
      const v = str.charCodeAt(i + 1);
      if (v >= 0xdc00 && v <= 0xdfff) i++;
    }
    i++;
  }
  return i;
}

// Code points of a well-formed string, one string each.
function codePoints(s) {
  return Array.from(s);
}

// ----------------------------------------------------------- base64url

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const B64_VALUE = new Int16Array(128).fill(-1);
for (let i = 0; i < 64; i++) B64_VALUE[B64.charCodeAt(i)] = i;

// base64url without padding.
export function bytesToBase64url(bytes) {
  let out = '';
  const n = bytes.length;
  let i = 0;
  for (; i + 3 <= n; i += 3) {
    const v = (bytes[i] << 16) | (bytes[i + 1] << 8) | bytes[i + 2];
    out += B64[v >> 18] + B64[(v >> 12) & 63] + B64[(v >> 6) & 63] + B64[v & 63];
  }
  if (n - i === 1) {
    const v = bytes[i] << 16;
    out += B64[v >> 18] + B64[(v >> 12) & 63];
  } else if (n - i === 2) {
    const v = (bytes[i] << 16) | (bytes[i + 1] << 8);
    out += B64[v >> 18] + B64[(v >> 12) & 63] + B64[(v >> 6) & 63];
  }
  return out;
}

// The inverse; throws on a character outside the alphabet, padding, a
// length that no byte string has, or non-zero bits after the last byte.
export function base64urlToBytes(s) {
  if (typeof s !== 'string') throw new TypeError('base64url: not a string');
  if (s.length % 4 === 1) throw new Error('base64url: bad length ' + s.length);
  const out = new Uint8Array(Math.floor((s.length * 3) / 4));
  let o = 0;
  let acc = 0;
  let bits = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    const v = c < 128 ? B64_VALUE[c] : -1;
    if (v < 0) throw new Error('base64url: bad character at ' + i);
    acc = ((acc << 6) | v) & 0xffffff;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (acc >> bits) & 0xff;
    }
  }
  if ((acc & ((1 << bits) - 1)) !== 0) throw new Error('base64url: non-zero trailing bits');
  return out;
}

// ---------------------------------------------------------- replica ids

const MAX_U64 = (1n << 64n) - 1n;

function compareBytes(a, b) {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    if (a[i] !== b[i]) return a[i] - b[i];
  }
  return a.length - b.length;
}

// A replica as the state keeps it: node, incarnation (BigInt), the node's
// UTF-8 (the order compares it) and a map key.
function makeReplica(node, incarnation) {
  return { node, incarnation, bytes: utf8(node), key: incarnation.toString() + ':' + node };
}

// ReplicaId's order: node string by bytes, then incarnation.
function compareReplica(a, b) {
  const c = compareBytes(a.bytes, b.bytes);
  if (c !== 0) return c;
  return a.incarnation < b.incarnation ? -1 : a.incarnation > b.incarnation ? 1 : 0;
}

// Checks an API replica id {node, incarnation} and returns the internal form.
function toReplica(me) {
  if (me === null || typeof me !== 'object') throw new TypeError('replica id must be {node, incarnation}');
  const node = me.node;
  if (typeof node !== 'string' || node.length === 0) throw new TypeError('text: empty replica id');
  checkWellFormed(node, 'replica node id');
  let inc = me.incarnation;
  if (typeof inc === 'number') {
    if (!Number.isSafeInteger(inc)) throw new TypeError('incarnation must be a BigInt');
    inc = BigInt(inc);
  } else if (typeof inc === 'string' && /^[0-9]+$/.test(inc)) {
    inc = BigInt(inc);
  }
  if (typeof inc !== 'bigint' || inc < 0n || inc > MAX_U64) {
    throw new TypeError('incarnation must be a BigInt in 0..2^64-1');
  }
  const r = makeReplica(node, inc);
  if (r.bytes.length > MAX_NODE_BYTES) throw new TypeError('replica node id longer than 256 bytes');
  return r;
}

// ------------------------------------------------------- counter ranges
//
// A set of counters as a flat sorted array [lo0, hi0, lo1, hi1, ...] of
// disjoint ranges [lo, hi) that do not touch.

function rangesContain(a, c) {
  let lo = 0;
  let hi = a.length >> 1; // ranges
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (a[2 * mid] <= c) lo = mid + 1;
    else hi = mid;
  }
  return lo > 0 && c < a[2 * lo - 1];
}

function rangesAdd(a, lo, hi) {
  if (lo >= hi) return;
  const n = a.length;
  if (n === 0 || a[n - 1] < lo) {
    a.push(lo, hi);
    return;
  }
  if (a[n - 1] === lo) {
    a[n - 1] = hi;
    return;
  }
  // The first range whose end reaches lo (touching joins).
  let k = 0;
  let h = n >> 1;
  while (k < h) {
    const mid = (k + h) >> 1;
    if (a[2 * mid + 1] < lo) k = mid + 1;
    else h = mid;
  }
  let j = k;
  let nlo = lo;
  let nhi = hi;
  while (2 * j < n && a[2 * j] <= hi) {
    nlo = Math.min(nlo, a[2 * j]);
    nhi = Math.max(nhi, a[2 * j + 1]);
    j++;
  }
  a.splice(2 * k, 2 * (j - k), nlo, nhi);
}

function rangesRemove(a, lo, hi) {
  if (lo >= hi) return a;
  const out = [];
  for (let i = 0; i < a.length; i += 2) {
    const x = a[i];
    const y = a[i + 1];
    if (y <= lo || x >= hi) {
      out.push(x, y);
      continue;
    }
    if (x < lo) out.push(x, lo);
    if (y > hi) out.push(hi, y);
  }
  return out;
}

// Calls f(lo, hi) for each maximal part of [lo, hi) that `a` (may be
// null) lacks.
function forEachMissing(a, lo, hi, f) {
  if (a === null || a === undefined || a.length === 0) {
    f(lo, hi);
    return;
  }
  // The first range starting past lo.
  let k = 0;
  let h = a.length >> 1;
  while (k < h) {
    const mid = (k + h) >> 1;
    if (a[2 * mid] <= lo) k = mid + 1;
    else h = mid;
  }
  if (k > 0 && a[2 * k - 1] > lo) lo = a[2 * k - 1];
  while (lo < hi) {
    if (2 * k >= a.length || a[2 * k] >= hi) {
      f(lo, hi);
      return;
    }
    if (a[2 * k] > lo) f(lo, a[2 * k]);
    lo = Math.max(lo, a[2 * k + 1]);
    k++;
  }
}

// ---------------------------------------------------------- TextVersion

// A set of dots of one text: per replica, counter ranges [lo, hi).
export class TextVersion {
  constructor() {
    this._m = new Map(); // replica key -> {replica, ranges}
  }

  _entry(r, create) {
    let e = this._m.get(r.key);
    if (e === undefined && create) {
      e = { replica: r, ranges: [] };
      this._m.set(r.key, e);
    }
    return e;
  }

  // Adds [lo, hi) of replica `me` ({node, incarnation}), lo >= 1.
  add(me, lo, hi) {
    this._add(toReplica(me), Number(lo), Number(hi));
  }

  _add(r, lo, hi) {
    if (lo >= hi) return;
    rangesAdd(this._entry(r, true).ranges, lo, hi);
  }

  contains(me, counter) {
    const e = this._m.get(toReplica(me).key);
    return e !== undefined && rangesContain(e.ranges, Number(counter));
  }

  // True when every dot of `other` is here.
  covers(other) {
    for (const [key, oe] of other._m) {
      const e = this._m.get(key);
      if (e === undefined) return false;
      for (let i = 0; i < oe.ranges.length; i += 2) {
        let covered = true;
        forEachMissing(e.ranges, oe.ranges[i], oe.ranges[i + 1], () => {
          covered = false;
        });
        if (!covered) return false;
      }
    }
    return true;
  }

  merge(other) {
    for (const oe of other._m.values()) {
      for (let i = 0; i < oe.ranges.length; i += 2) this._add(oe.replica, oe.ranges[i], oe.ranges[i + 1]);
    }
  }

  // One past the replica's highest counter (1 if none): its next dot.
  next(me) {
    const e = this._m.get(toReplica(me).key);
    return e === undefined || e.ranges.length === 0 ? 1 : e.ranges[e.ranges.length - 1];
  }

  isEmpty() {
    return this._m.size === 0;
  }

  equals(other) {
    if (this._m.size !== other._m.size) return false;
    for (const [key, e] of this._m) {
      const oe = other._m.get(key);
      if (oe === undefined || oe.ranges.length !== e.ranges.length) return false;
      for (let i = 0; i < e.ranges.length; i++) if (e.ranges[i] !== oe.ranges[i]) return false;
    }
    return true;
  }

  _sorted() {
    return [...this._m.values()].sort((a, b) => compareReplica(a.replica, b.replica));
  }

  // [{replica: {node, incarnation}, ranges: [[lo, hi], ...]}] in replica order.
  entries() {
    return this._sorted().map((e) => {
      const ranges = [];
      for (let i = 0; i < e.ranges.length; i += 2) ranges.push([e.ranges[i], e.ranges[i + 1]]);
      return { replica: { node: e.replica.node, incarnation: e.replica.incarnation }, ranges };
    });
  }

  // The bytes of TextVersion::Encode: version byte 1, then msgpack
  // [[node, incarnation, [lo, hi, ...]], ...] in replica order.
  encode() {
    const w = new Writer();
    w.byte(1);
    const es = this._sorted();
    w.array(es.length);
    for (const e of es) {
      w.array(3);
      w.str(e.replica.bytes);
      w.uint(e.replica.incarnation);
      w.array(e.ranges.length);
      for (const v of e.ranges) w.uint(v);
    }
    return w.take();
  }

  // TextVersion::Decode's checks.
  static decode(bytes) {
    const r = new Reader(bytes);
    if (r.remaining() < 1 || r.byte() !== 1) throw bad('version: unsupported format version');
    const v = new TextVersion();
    const n = r.array();
    let prev = null;
    for (let i = 0; i < n; i++) {
      if (r.array() !== 3) throw bad('version entry: expected 3 elements');
      const node = r.str();
      const inc = r.uint64();
      if (node.length === 0 || node.length > MAX_NODE_BYTES) throw bad('bad node id in version');
      const rep = makeReplica(decodeNode(node), inc);
      if (prev !== null && compareReplica(prev, rep) >= 0) throw bad('version replicas out of order');
      const m = r.array();
      if (m === 0 || m % 2 !== 0) throw bad('bad version ranges');
      const e = v._entry(rep, true);
      let last = 0;
      for (let k = 0; k < m; k += 2) {
        const lo = r.uintNumber();
        const hi = r.uintNumber();
        if (lo < 1 || lo <= last || hi <= lo || hi > MAX_COUNTER + 1) {
          throw bad('version ranges not ascending, disjoint and in range');
        }
        e.ranges.push(lo, hi);
        last = hi;
      }
      prev = rep;
    }
    if (r.remaining() !== 0) throw bad('trailing bytes after the version');
    return v;
  }

  toString() {
    return (
      '{' +
      this._sorted()
        .map((e) => {
          const parts = [];
          for (let i = 0; i < e.ranges.length; i += 2) parts.push(e.ranges[i] + '-' + (e.ranges[i + 1] - 1));
          return e.replica.node + '#' + e.replica.incarnation + ': ' + parts.join(', ');
        })
        .join(', ') +
      '}'
    );
  }
}

function decodeNode(bytes) {
  try {
    return utf8Decoder.decode(bytes);
  } catch {
    throw bad('replica node id is not UTF-8');
  }
}

// -------------------------------------------------------------- msgpack

// Appends msgpack values (always the shortest form, as msgpack-c packs)
// and raw bytes.
class Writer {
  constructor() {
    this.buf = new Uint8Array(256);
    this.n = 0;
  }
  _room(k) {
    if (this.n + k <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.n + k) size *= 2;
    const b = new Uint8Array(size);
    b.set(this.buf.subarray(0, this.n));
    this.buf = b;
  }
  byte(v) {
    this._room(1);
    this.buf[this.n++] = v;
  }
  bytes(b) {
    this._room(b.length);
    this.buf.set(b, this.n);
    this.n += b.length;
  }
  _be(v, k) {
    // v: a non-negative integer below 2^(8k) (number, or BigInt for k = 8)
    this._room(k);
    if (typeof v === 'bigint') {
      for (let i = k - 1; i >= 0; i--) {
        this.buf[this.n + i] = Number(v & 0xffn);
        v >>= 8n;
      }
    } else {
      for (let i = k - 1; i >= 0; i--) {
        this.buf[this.n + i] = v % 256;
        v = Math.floor(v / 256);
      }
    }
    this.n += k;
  }
  uint(v) {
    if (typeof v === 'bigint') {
      if (v >= 1n << 32n) {
        this.byte(0xcf);
        this._be(v, 8);
        return;
      }
      v = Number(v);
    }
    if (v < 128) this.byte(v);
    else if (v < 256) {
      this.byte(0xcc);
      this._be(v, 1);
    } else if (v < 65536) {
      this.byte(0xcd);
      this._be(v, 2);
    } else if (v < TWO32) {
      this.byte(0xce);
      this._be(v, 4);
    } else {
      this.byte(0xcf);
      this._be(BigInt(v), 8);
    }
  }
  array(n) {
    if (n < 16) this.byte(0x90 | n);
    else if (n < 65536) {
      this.byte(0xdc);
      this._be(n, 2);
    } else {
      this.byte(0xdd);
      this._be(n, 4);
    }
  }
  str(b) {
    const n = b.length;
    if (n < 32) this.byte(0xa0 | n);
    else if (n < 256) {
      this.byte(0xd9);
      this._be(n, 1);
    } else if (n < 65536) {
      this.byte(0xda);
      this._be(n, 2);
    } else {
      this.byte(0xdb);
      this._be(n, 4);
    }
    this.bytes(b);
  }
  bin(b) {
    const n = b.length;
    if (n < 256) {
      this.byte(0xc4);
      this._be(n, 1);
    } else if (n < 65536) {
      this.byte(0xc5);
      this._be(n, 2);
    } else {
      this.byte(0xc6);
      this._be(n, 4);
    }
    this.bytes(b);
  }
  // Varint columns: LEB128, and zigzag for signed values.
  u(v) {
    this._room(10);
    while (v >= 128) {
      this.buf[this.n++] = (v % 128) | 0x80;
      v = Math.floor(v / 128);
    }
    this.buf[this.n++] = v;
  }
  s(v) {
    this.u(v >= 0 ? v * 2 : -v * 2 - 1);
  }
  take() {
    return this.buf.slice(0, this.n);
  }
}

// Reads the msgpack values the text's layout has, checking every length
// against the bytes left.
class Reader {
  constructor(bytes, start = 0, end = bytes.length) {
    this.b = bytes;
    this.p = start;
    this.end = end;
  }
  remaining() {
    return this.end - this.p;
  }
  byte() {
    if (this.p >= this.end) throw bad('truncated input');
    return this.b[this.p++];
  }
  _be(k) {
    if (this.end - this.p < k) throw bad('truncated input');
    let v = 0;
    for (let i = 0; i < k; i++) v = v * 256 + this.b[this.p++];
    return v;
  }
  _be64() {
    if (this.end - this.p < 8) throw bad('truncated input');
    let v = 0n;
    for (let i = 0; i < 8; i++) v = (v << 8n) | BigInt(this.b[this.p++]);
    return v;
  }
  // An unsigned integer (msgpack-c also reads a non-negative signed one
  // as unsigned), as a BigInt.
  uint64() {
    const t = this.byte();
    if (t < 0x80) return BigInt(t);
    switch (t) {
      case 0xcc:
        return BigInt(this._be(1));
      case 0xcd:
        return BigInt(this._be(2));
      case 0xce:
        return BigInt(this._be(4));
      case 0xcf:
        return this._be64();
      case 0xd0:
      case 0xd1:
      case 0xd2:
      case 0xd3: {
        const k = 1 << (t - 0xd0);
        let v = k === 8 ? this._be64() : BigInt(this._be(k));
        const bits = BigInt(8 * k);
        if (v >= 1n << (bits - 1n)) throw bad('expected an unsigned integer');
        return v;
      }
      default:
        throw bad('expected an unsigned integer');
    }
  }
  uintNumber() {
    const v = this.uint64();
    return v > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(v);
  }
  array() {
    const t = this.byte();
    let n;
    if ((t & 0xf0) === 0x90) n = t & 15;
    else if (t === 0xdc) n = this._be(2);
    else if (t === 0xdd) n = this._be(4);
    else throw bad('expected an array');
    if (n > this.remaining()) throw bad('an array claims more elements than the input holds');
    return n;
  }
  _raw(n) {
    if (n > this.remaining()) throw bad('truncated input');
    const out = this.b.subarray(this.p, this.p + n);
    this.p += n;
    return out;
  }
  str() {
    const t = this.byte();
    let n;
    if ((t & 0xe0) === 0xa0) n = t & 31;
    else if (t === 0xd9) n = this._be(1);
    else if (t === 0xda) n = this._be(2);
    else if (t === 0xdb) n = this._be(4);
    else throw bad('expected a string');
    return this._raw(n);
  }
  bin() {
    const t = this.byte();
    let n;
    if (t === 0xc4) n = this._be(1);
    else if (t === 0xc5) n = this._be(2);
    else if (t === 0xc6) n = this._be(4);
    else throw bad('expected a byte string');
    return this._raw(n);
  }
}

// Varint columns.
class ColumnReader {
  constructor(b) {
    this.b = b;
    this.p = 0;
  }
  done() {
    return this.p === this.b.length;
  }
  // An unsigned varint; null when truncated or too large for a number
  // (no value of a valid state comes near 2^53).
  u() {
    let x = 0;
    let mul = 1;
    for (let i = 0; i < 10; i++) {
      if (this.p >= this.b.length) return null;
      const c = this.b[this.p++];
      x += (c & 0x7f) * mul;
      if ((c & 0x80) === 0) return x <= Number.MAX_SAFE_INTEGER ? x : null;
      mul *= 128;
    }
    return null;
  }
  s() {
    const x = this.u();
    if (x === null) return null;
    return x % 2 === 0 ? x / 2 : -(x + 1) / 2;
  }
}

// -------------------------------------------------------- the document
//
// Every character (tombstones included) is an item in document order, kept
// in chunks of a few hundred so that an insert moves little and a position
// is found chunk by chunk:
//   {r, c}    id: replica index, counter
//   lr, lc    left origin (lr NONE: none)
//   rr, rc    right origin (rr NONE: none)
//   ch        the character (a string of one code point) while live, else null
//   dr, dc    the dot of its first delete (dr NONE: live)
//   chunk     the chunk holding it

const CHUNK = 256; // a chunk splits into pieces of this size past twice it

function idKey(r, c) {
  return r * TWO32 + c;
}

class Doc {
  constructor() {
    this.chunks = [{ items: [], vis: 0, idx: 0 }];
    this.total = 0;
    this.visible = 0;
    this.byId = new Map();
    this.starts = null; // chunk -> index of its first item (lazy)
  }

  get(r, c) {
    return this.byId.get(idKey(r, c));
  }

  _starts() {
    if (this.starts === null) {
      const s = new Array(this.chunks.length);
      let n = 0;
      for (let i = 0; i < this.chunks.length; i++) {
        s[i] = n;
        n += this.chunks[i].items.length;
      }
      this.starts = s;
    }
    return this.starts;
  }

  // Index of `item` among all characters.
  indexOf(item) {
    const ch = item.chunk;
    return this._starts()[ch.idx] + ch.items.indexOf(item);
  }

  // Visible characters before `item`, and 1 more when it is visible.
  visibleThrough(item) {
    const ch = item.chunk;
    let n = 0;
    for (let i = 0; i < ch.idx; i++) n += this.chunks[i].vis;
    for (const it of ch.items) {
      if (it.dr === NONE) n++;
      if (it === item) break;
    }
    return n;
  }

  // The position {ci, off} of visible character n; the end for n >= visible.
  findVisible(n) {
    if (n >= this.visible) return this.end();
    for (let ci = 0; ci < this.chunks.length; ci++) {
      const ch = this.chunks[ci];
      if (n >= ch.vis) {
        n -= ch.vis;
        continue;
      }
      const items = ch.items;
      for (let off = 0; off < items.length; off++) {
        if (items[off].dr === NONE) {
          if (n === 0) return { ci, off };
          n--;
        }
      }
    }
    throw new Error('text: visible counts out of step');
  }

  end() {
    const ci = this.chunks.length - 1;
    return { ci, off: this.chunks[ci].items.length };
  }

  // Position of index i (0..total).
  posOfIndex(i) {
    const s = this._starts();
    let lo = 0;
    let hi = this.chunks.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (s[mid] <= i) lo = mid;
      else hi = mid - 1;
    }
    return { ci: lo, off: i - s[lo] };
  }

  // The item at p, or null at the end.
  itemAt(p) {
    let { ci, off } = p;
    while (ci < this.chunks.length) {
      const items = this.chunks[ci].items;
      if (off < items.length) return items[off];
      ci++;
      off = 0;
    }
    return null;
  }

  // The item before p, or null at the beginning.
  itemBefore(p) {
    if (p.off > 0) return this.chunks[p.ci].items[p.off - 1];
    for (let ci = p.ci - 1; ci >= 0; ci--) {
      const items = this.chunks[ci].items;
      if (items.length > 0) return items[items.length - 1];
    }
    return null;
  }

  // Calls f(item) in document order.
  forEach(f) {
    for (const ch of this.chunks) for (const it of ch.items) f(it);
  }

  // Inserts `items` (new ids) at position p.
  insertAt(p, items) {
    const ch = this.chunks[p.ci];
    let vis = 0;
    for (const it of items) {
      it.chunk = ch;
      if (it.dr === NONE) vis++;
      this.byId.set(idKey(it.r, it.c), it);
    }
    if (items.length < 1000) ch.items.splice(p.off, 0, ...items);
    else ch.items = ch.items.slice(0, p.off).concat(items, ch.items.slice(p.off));
    ch.vis += vis;
    this.visible += vis;
    this.total += items.length;
    this.starts = null;
    if (ch.items.length > 2 * CHUNK) this._split(p.ci);
  }

  _split(ci) {
    const ch = this.chunks[ci];
    const pieces = [];
    for (let i = 0; i < ch.items.length; i += CHUNK) {
      const items = ch.items.slice(i, i + CHUNK);
      const piece = { items, vis: 0, idx: 0 };
      for (const it of items) {
        it.chunk = piece;
        if (it.dr === NONE) piece.vis++;
      }
      pieces.push(piece);
    }
    this.chunks.splice(ci, 1, ...pieces);
    for (let i = ci; i < this.chunks.length; i++) this.chunks[i].idx = i;
    this.starts = null;
  }

  // Replaces the document by `items` in order (decoding).
  load(items) {
    this.chunks = [];
    this.byId = new Map();
    this.total = items.length;
    this.visible = 0;
    for (let i = 0; i === 0 || i < items.length; i += CHUNK) {
      const chunk = { items: items.slice(i, i + CHUNK), vis: 0, idx: this.chunks.length };
      for (const it of chunk.items) {
        it.chunk = chunk;
        if (it.dr === NONE) chunk.vis++;
        this.byId.set(idKey(it.r, it.c), it);
      }
      this.visible += chunk.vis;
      this.chunks.push(chunk);
    }
    this.starts = null;
  }

  markDeleted(item, dr, dc) {
    item.dr = dr;
    item.dc = dc;
    item.ch = null;
    item.chunk.vis--;
    this.visible--;
  }
}

function newItem(r, c, lr, lc, rr, rc, ch, dr, dc) {
  return { r, c, lr, lc, rr, rc, ch, dr, dc, chunk: null };
}

// A run: a stretch of characters of one replica with consecutive
// counters, each (after the first) with the one before as left origin,
// one right origin, one state (live with `chars`, or deleted by dots
// dc, dc + dir, ... of replica dr):
//   {r, c, len, lr, lc, rr, rc, chars, dr, dc, dir}
function delAt(run, off) {
  return run.dir > 0 ? run.dc + off : run.dc - off;
}

// Appends the character or run `b` to `runs`, joining it with the last one
// where they can be one run (text.cc's PushJoined).
function pushJoined(runs, b) {
  if (runs.length > 0) {
    const a = runs[runs.length - 1];
    if (
      a.r === b.r &&
      a.c + a.len === b.c &&
      b.lr === a.r &&
      b.lc === a.c + a.len - 1 &&
      b.rr === a.rr &&
      b.rc === a.rc &&
      (a.dr === NONE) === (b.dr === NONE)
    ) {
      if (a.dr === NONE) {
        a.len += b.len;
        if (a.chars !== null && b.chars !== null) for (const ch of b.chars) a.chars.push(ch);
        return;
      }
      if (a.dr === b.dr) {
        const last = delAt(a, a.len - 1);
        const step = b.dc - last;
        if ((step === 1 || step === -1) && (a.len === 1 || a.dir === step) && (b.len === 1 || b.dir === step)) {
          a.dir = step;
          a.len += b.len;
          return;
        }
      }
    }
  }
  const c = {
    r: b.r,
    c: b.c,
    len: b.len,
    lr: b.lr,
    lc: b.lc,
    rr: b.rr,
    rc: b.rc,
    chars: b.chars === null ? null : b.chars.slice(),
    dr: b.dr,
    dc: b.dc,
    dir: b.len === 1 ? 1 : b.dir,
  };
  runs.push(c);
}

function itemAsRun(it) {
  return {
    r: it.r,
    c: it.c,
    len: 1,
    lr: it.lr,
    lc: it.lc,
    rr: it.rr,
    rc: it.rc,
    chars: it.dr === NONE ? [it.ch] : null,
    dr: it.dr,
    dc: it.dc,
    dir: 1,
  };
}

// Pending delete records: {tr, tc, len, dr, dc, dir}.
function recDelAt(d, off) {
  return d.dir > 0 ? d.dc + off : d.dc - off;
}

// ------------------------------------------------------------------ Text

export class Text {
  constructor() {
    this._reps = []; // index -> replica
    this._repIndex = new Map(); // replica key -> index
    this._seen = []; // per replica index: every dot here (ranges)
    this._doc = new Doc();
    this._pending = []; // runs whose origins are not here yet
    this._pendingDeletes = []; // deletes of characters not here yet
    this._extra = new Map(); // "tr:tc:dr:dc" -> [tr, tc, dr, dc]: second deletes
  }

  // ---------------------------------------------------------- reading

  // Visible code points.
  get length() {
    return this._doc.visible;
  }

  // The visible text.
  content() {
    const parts = [];
    this._doc.forEach((it) => {
      if (it.dr === NONE) parts.push(it.ch);
    });
    return parts.join('');
  }

  // The dots of the characters and deletes applied here (pending ones
  // excluded), as Text::version().
  version() {
    let applied = this._seen;
    if (this._pending.length > 0 || this._pendingDeletes.length > 0) {
      applied = this._seen.map((a) => a.slice());
      for (const p of this._pending) {
        applied[p.r] = rangesRemove(applied[p.r], p.c, p.c + p.len);
        if (p.dr !== NONE) {
          const last = delAt(p, p.len - 1);
          applied[p.dr] = rangesRemove(applied[p.dr], Math.min(p.dc, last), Math.max(p.dc, last) + 1);
        }
      }
      for (const d of this._pendingDeletes) {
        const last = recDelAt(d, d.len - 1);
        applied[d.dr] = rangesRemove(applied[d.dr], Math.min(d.dc, last), Math.max(d.dc, last) + 1);
      }
    }
    const v = new TextVersion();
    for (let r = 0; r < applied.length; r++) {
      const a = applied[r];
      for (let i = 0; i < a.length; i += 2) v._add(this._reps[r], a[i], a[i + 1]);
    }
    return v;
  }

  // Waiting records here: pending runs plus pending delete records (zero
  // exactly when the C++ PendingCount() is zero).
  pendingCount() {
    return this._pending.length + this._pendingDeletes.length;
  }

  isBottom() {
    return this._doc.total === 0 && this._pending.length === 0 && this._pendingDeletes.length === 0 && this._extra.size === 0;
  }

  // A cursor naming the place after the code point left of `pos` (null at
  // 0); it follows that character through concurrent edits.
  cursorAt(pos) {
    this._checkPos(pos, 'cursor position');
    if (pos === 0) return null;
    const it = this._doc.itemAt(this._doc.findVisible(pos - 1));
    const rep = this._reps[it.r];
    return Object.freeze({ node: rep.node, incarnation: rep.incarnation, counter: it.c });
  }

  // The visible position of a cursor's place now: after its character, or,
  // when that is deleted, where its tombstone sits. 0 for null (and for a
  // cursor of a character this document does not hold).
  cursorPos(cursor) {
    if (cursor === null || cursor === undefined) return 0;
    const r = this._repIndex.get(cursor.incarnation.toString() + ':' + cursor.node);
    if (r === undefined) return 0;
    const it = this._doc.get(r, cursor.counter);
    if (it === undefined) return 0;
    return this._doc.visibleThrough(it);
  }

  // --------------------------------------------------------- internals

  _intern(rep) {
    let idx = this._repIndex.get(rep.key);
    if (idx === undefined) {
      idx = this._reps.length;
      this._reps.push(rep);
      this._repIndex.set(rep.key, idx);
      this._seen.push([]);
    }
    return idx;
  }

  _next(r) {
    const a = this._seen[r];
    return a.length === 0 ? 1 : a[a.length - 1];
  }

  _seenHas(r, c) {
    return rangesContain(this._seen[r], c);
  }

  // (replica, counter) order of two dots, by replica id.
  _dotLess(ar, ac, br, bc) {
    if (ar !== br) return compareReplica(this._reps[ar], this._reps[br]) < 0;
    return ac < bc;
  }

  _checkPos(pos, what) {
    if (!Number.isSafeInteger(pos) || pos < 0 || pos > this._doc.visible) {
      throw new RangeError(what + ' ' + pos + ' past the end (' + this._doc.visible + ')');
    }
  }

  // The runs of the document in order, joined as the encoder joins them.
  _docRuns() {
    const runs = [];
    let a = null;
    this._doc.forEach((it) => {
      // pushJoined(runs, itemAsRun(it)), without the object.
      if (a !== null && a.r === it.r && a.c + a.len === it.c && it.lr === a.r && it.lc === a.c + a.len - 1 && it.rr === a.rr && it.rc === a.rc) {
        if (a.dr === NONE && it.dr === NONE) {
          a.len++;
          a.chars.push(it.ch);
          return;
        }
        if (a.dr !== NONE && a.dr === it.dr) {
          const step = it.dc - delAt(a, a.len - 1);
          if ((step === 1 || step === -1) && (a.len === 1 || a.dir === step)) {
            a.dir = step;
            a.len++;
            return;
          }
        }
      }
      a = itemAsRun(it);
      runs.push(a);
    });
    return runs;
  }

  // ------------------------------------------------------ integration

  // Integrates `run` when both its origins are in the document; false
  // when one is not.
  _tryIntegrate(run) {
    if (run.lr !== NONE && this._doc.get(run.lr, run.lc) === undefined) return false;
    if (run.rr !== NONE && this._doc.get(run.rr, run.rc) === undefined) return false;
    this._integrate(run);
    return true;
  }

  // Puts `run` (origins in the document, ids not) into the document by
  // FugueMax, then applies its own delete if it has one (Impl::Integrate,
  // a character at a time).
  _integrate(run) {
    const doc = this._doc;
    const total = doc.total;
    let leftIdx = -1;
    let pos;
    if (run.lr !== NONE) {
      const l = doc.get(run.lr, run.lc);
      leftIdx = doc.indexOf(l);
      pos = doc.posOfIndex(leftIdx + 1);
    } else {
      pos = { ci: 0, off: 0 };
    }
    const rightIdx = run.rr === NONE ? total : doc.indexOf(doc.get(run.rr, run.rc));
    let i = leftIdx + 1;
    let dest = i;
    let scanning = false;
    let prev = leftIdx >= 0 ? doc.get(run.lr, run.lc) : null;
    let { ci, off } = pos;
    for (;;) {
      if (!scanning) dest = i;
      if (i >= rightIdx || i >= total) break;
      while (off >= doc.chunks[ci].items.length) {
        ci++;
        off = 0;
      }
      const o = doc.chunks[ci].items[off];
      let oleft;
      if (o.lr === NONE) oleft = -1;
      else if (prev !== null && prev.r === o.lr && prev.c === o.lc) oleft = i - 1;
      else oleft = doc.indexOf(doc.get(o.lr, o.lc));
      if (oleft < leftIdx) break;
      if (oleft === leftIdx) {
        const oright = o.rr === NONE ? total : doc.indexOf(doc.get(o.rr, o.rc));
        if (oright < rightIdx) {
          scanning = true;
        } else if (oright === rightIdx) {
          // Ties go by id.
          if (this._dotLess(run.r, run.c, o.r, o.c)) break;
          scanning = false;
        } else {
          scanning = false;
        }
      }
      prev = o;
      i++;
      off++;
    }
    const items = new Array(run.len);
    for (let k = 0; k < run.len; k++) {
      items[k] =
        k === 0
          ? newItem(run.r, run.c, run.lr, run.lc, run.rr, run.rc, run.chars === null ? null : run.chars[0], NONE, 0)
          : newItem(run.r, run.c + k, run.r, run.c + k - 1, run.rr, run.rc, run.chars === null ? null : run.chars[k], NONE, 0);
    }
    doc.insertAt(doc.posOfIndex(dest), items);
    if (run.dr !== NONE) {
      this._applyDelete({ tr: run.r, tc: run.c, len: run.len, dr: run.dr, dc: run.dc, dir: run.dir });
    }
  }

  // Integrates `cands` in an order where each run's origins come first; a
  // run whose origin is nowhere waits in pending (Impl::IntegrateAll).
  _integrateAll(cands) {
    if (cands.length === 0) return;
    const holder = new Map(); // id -> candidate
    for (let k = 0; k < cands.length; k++) {
      const c = cands[k];
      for (let j = 0; j < c.len; j++) holder.set(idKey(c.r, c.c + j), k);
    }
    const state = new Uint8Array(cands.length); // 0 new, 1 on the stack, 2 done
    const stack = [];
    for (let start = 0; start < cands.length; start++) {
      if (state[start] !== 0) continue;
      stack.push(start);
      state[start] = 1;
      while (stack.length > 0) {
        const k = stack[stack.length - 1];
        const c = cands[k];
        let pushed = false;
        for (const [dr, dc] of [
          [c.lr, c.lc],
          [c.rr, c.rc],
        ]) {
          if (dr === NONE) continue;
          const h = holder.get(idKey(dr, dc));
          if (h !== undefined && state[h] === 0) {
            state[h] = 1;
            stack.push(h);
            pushed = true;
            break;
          }
        }
        if (pushed) continue;
        stack.pop();
        state[k] = 2;
        if (!this._tryIntegrate(c)) this._pending.push(c);
      }
    }
  }

  // ---------------------------------------------------------- deletes

  // Marks the characters of delete record `d` deleted; absent ones wait.
  _applyDelete(d) {
    const doc = this._doc;
    let off = 0;
    while (off < d.len) {
      const it = doc.get(d.tr, d.tc + off);
      if (it === undefined) {
        let end = off + 1;
        while (end < d.len && doc.get(d.tr, d.tc + end) === undefined) end++;
        this._pendingDeletes.push({ tr: d.tr, tc: d.tc + off, len: end - off, dr: d.dr, dc: recDelAt(d, off), dir: d.dir });
        off = end;
        continue;
      }
      if (it.dr === NONE) doc.markDeleted(it, d.dr, recDelAt(d, off));
      else this._addSecondDelete(it, d.dr, recDelAt(d, off));
      off++;
    }
  }

  // A deleted character deleted again by (dr, dc): the smallest dot stays
  // on the character, the others go to extra.
  _addSecondDelete(it, dr, dc) {
    if (it.dr === dr && it.dc === dc) return;
    if (this._dotLess(it.dr, it.dc, dr, dc)) {
      this._extraAdd(it.r, it.c, dr, dc);
      return;
    }
    this._extraAdd(it.r, it.c, it.dr, it.dc);
    this._extra.delete(it.r + ':' + it.c + ':' + dr + ':' + dc);
    it.dr = dr;
    it.dc = dc;
  }

  _extraAdd(tr, tc, dr, dc) {
    this._extra.set(tr + ':' + tc + ':' + dr + ':' + dc, [tr, tc, dr, dc]);
  }

  // Places what can be placed, then retries the waiting deletes.
  _normalize() {
    if (this._pending.length > 0) {
      const cands = this._pending;
      this._pending = [];
      this._integrateAll(cands);
    }
    this._retryPendingDeletes();
  }

  _retryPendingDeletes() {
    if (this._pendingDeletes.length === 0) return;
    const retry = this._pendingDeletes;
    this._pendingDeletes = [];
    for (const d of retry) this._applyDelete(d);
  }

  // ------------------------------------------------------------ edits

  // Inserts `str` at code point `pos`; returns the delta (a Text).
  insert(me, pos, str) {
    const rep = toReplica(me);
    if (typeof str !== 'string') throw new TypeError('text: insert needs a string');
    checkWellFormed(str, 'inserted text');
    this._checkPos(pos, 'insert position');
    const delta = new Text();
    if (str.length === 0) return delta;
    if (str.length * 3 > MAX_INSERT_BYTES && utf8(str).length > MAX_INSERT_BYTES) {
      throw new RangeError('text: insert too large');
    }
    const chars = codePoints(str);
    const r = this._intern(rep);
    if (this._next(r) + chars.length > MAX_COUNTER) throw new RangeError('text: too many edits by one replica');
    this._insertNow(r, pos, chars, delta);
    delta._normalize();
    return delta;
  }

  _insertNow(me, pos, chars, delta) {
    const doc = this._doc;
    const c = this._next(me);
    const at = doc.findVisible(pos);
    const before = doc.itemBefore(at);
    const right = doc.itemAt(at);
    const lr = before === null ? NONE : before.r;
    const lc = before === null ? 0 : before.c;
    const rr = right === null ? NONE : right.r;
    const rc = right === null ? 0 : right.c;
    const n = chars.length;
    rangesAdd(this._seen[me], c, c + n);
    // The delta: the new run, waiting for its origins.
    const d = delta;
    const dme = d._intern(this._reps[me]);
    const dlr = lr === NONE ? NONE : d._intern(this._reps[lr]);
    const drr = rr === NONE ? NONE : d._intern(this._reps[rr]);
    rangesAdd(d._seen[dme], c, c + n);
    d._pending.push({ r: dme, c, len: n, lr: dlr, lc, rr: drr, rc, chars: chars.slice(), dr: NONE, dc: 0, dir: 1 });
    const items = new Array(n);
    for (let k = 0; k < n; k++) {
      items[k] = k === 0 ? newItem(me, c, lr, lc, rr, rc, chars[0], NONE, 0) : newItem(me, c + k, me, c + k - 1, rr, rc, chars[k], NONE, 0);
    }
    doc.insertAt(at, items);
  }

  // Deletes `len` code points from `pos`; returns the delta (a Text).
  delete(me, pos, len) {
    const rep = toReplica(me);
    if (!Number.isSafeInteger(pos) || !Number.isSafeInteger(len) || pos < 0 || len < 0 || pos > this._doc.visible || len > this._doc.visible - pos) {
      throw new RangeError('text: delete of ' + len + ' at ' + pos + ' past the end (' + this._doc.visible + ')');
    }
    const delta = new Text();
    if (len === 0) return delta;
    const r = this._intern(rep);
    if (this._next(r) + len > MAX_COUNTER) throw new RangeError('text: too many edits by one replica');
    this._deleteNow(r, pos, len, delta);
    delta._normalize();
    return delta;
  }

  _deleteNow(me, pos, len, delta) {
    const doc = this._doc;
    const d0 = this._next(me);
    let d = d0;
    let { ci, off } = doc.findVisible(pos);
    const dme = delta._intern(this._reps[me]);
    let rec = null;
    while (len > 0) {
      const items = doc.chunks[ci].items;
      if (off >= items.length) {
        ci++;
        off = 0;
        continue;
      }
      const it = items[off++];
      if (it.dr !== NONE) continue;
      doc.markDeleted(it, me, d);
      // One delta record per stretch of consecutive ids.
      const tr = delta._intern(this._reps[it.r]);
      if (rec !== null && rec.tr === tr && rec.tc + rec.len === it.c) {
        rec.len++;
      } else {
        rec = { tr, tc: it.c, len: 1, dr: dme, dc: d, dir: 1 };
        delta._pendingDeletes.push(rec);
      }
      d++;
      len--;
    }
    rangesAdd(this._seen[me], d0, d);
    rangesAdd(delta._seen[dme], d0, d);
  }

  // ----------------------------------------------------------- deltas

  // What a holder of version `v` lacks: characters and deletes whose dots
  // v lacks (Text::DeltaSince).
  deltaSince(v) {
    const out = new Text();
    const n = this._reps.length;
    const vr = new Array(n).fill(null);
    for (const e of v._m.values()) {
      const idx = this._repIndex.get(e.replica.key);
      if (idx === undefined) continue;
      const a = [];
      for (let i = 0; i < e.ranges.length; i += 2) {
        rangesAdd(a, Math.min(e.ranges[i], 0xffffffff), Math.min(e.ranges[i + 1], 0xffffffff));
      }
      vr[idx] = a;
    }
    const has = (r, c) => vr[r] !== null && rangesContain(vr[r], c);
    const oi = (r) => out._intern(this._reps[r]);
    const addRunParts = (run) => {
      forEachMissing(vr[run.r], run.c, run.c + run.len, (lo, hi) => {
        const off = lo - run.c;
        const p = { r: oi(run.r), c: lo, len: hi - lo, lr: NONE, lc: 0, rr: NONE, rc: 0, chars: null, dr: NONE, dc: 0, dir: 1 };
        if (off === 0) {
          if (run.lr !== NONE) {
            p.lr = oi(run.lr);
            p.lc = run.lc;
          }
        } else {
          p.lr = p.r;
          p.lc = lo - 1;
        }
        if (run.rr !== NONE) {
          p.rr = oi(run.rr);
          p.rc = run.rc;
        }
        if (run.dr !== NONE) {
          p.dr = oi(run.dr);
          p.dc = delAt(run, off);
          p.dir = run.dir;
          const last = delAt(run, off + p.len - 1);
          rangesAdd(out._seen[p.dr], Math.min(p.dc, last), Math.max(p.dc, last) + 1);
        } else {
          p.chars = run.chars.slice(off, off + p.len);
        }
        rangesAdd(out._seen[p.r], lo, hi);
        out._pending.push(p);
      });
      // Deletes v lacks of characters v has.
      if (run.dr === NONE) return;
      for (let k = 0; k < run.len; k++) {
        if (!has(run.r, run.c + k)) continue;
        const dc = delAt(run, k);
        if (has(run.dr, dc)) continue;
        const tr = oi(run.r);
        const dr = oi(run.dr);
        rangesAdd(out._seen[dr], dc, dc + 1);
        const pd = out._pendingDeletes;
        if (pd.length > 0) {
          const last = pd[pd.length - 1];
          if (last.tr === tr && last.tc + last.len === run.c + k && last.dr === dr && recDelAt(last, last.len) === dc && (last.len > 1 || recDelAt(last, 0) + 1 === dc)) {
            last.len++;
            continue;
          }
        }
        pd.push({ tr, tc: run.c + k, len: 1, dr, dc, dir: run.dir });
      }
    };
    for (const run of this._docRuns()) addRunParts(run);
    for (const p of this._pending) addRunParts(p);
    for (const d of this._pendingDeletes) {
      for (let k = 0; k < d.len; k++) {
        const dc = recDelAt(d, k);
        if (has(d.dr, dc)) continue;
        const tr = oi(d.tr);
        const dr = oi(d.dr);
        rangesAdd(out._seen[dr], dc, dc + 1);
        out._pendingDeletes.push({ tr, tc: d.tc + k, len: 1, dr, dc, dir: 1 });
      }
    }
    for (const x of this._extra.values()) {
      if (has(x[2], x[3])) continue;
      const tr = oi(x[0]);
      const dr = oi(x[2]);
      rangesAdd(out._seen[dr], x[3], x[3] + 1);
      out._pendingDeletes.push({ tr, tc: x[1], len: 1, dr, dc: x[3], dir: 1 });
    }
    out._normalize();
    return out;
  }

  // Join (Text::Merge).
  merge(other) {
    if (!(other instanceof Text)) throw new TypeError('text: merge needs a Text');
    if (other === this) return;
    const map = other._reps.map((rep) => this._intern(rep));
    const cands = [];
    const dels = [];
    const takeRun = (run) => {
      const r = map[run.r];
      forEachMissing(this._seen[r], run.c, run.c + run.len, (lo, hi) => {
        const off = lo - run.c;
        const p = { r, c: lo, len: hi - lo, lr: NONE, lc: 0, rr: NONE, rc: 0, chars: null, dr: NONE, dc: 0, dir: 1 };
        if (off === 0) {
          if (run.lr !== NONE) {
            p.lr = map[run.lr];
            p.lc = run.lc;
          }
        } else {
          p.lr = r;
          p.lc = lo - 1;
        }
        if (run.rr !== NONE) {
          p.rr = map[run.rr];
          p.rc = run.rc;
        }
        if (run.dr !== NONE) {
          p.dr = map[run.dr];
          p.dc = delAt(run, off);
          p.dir = run.dir;
        } else {
          p.chars = run.chars.slice(off, off + p.len);
        }
        cands.push(p);
      });
      // Deletes of characters this state has, by dots it lacks.
      if (run.dr === NONE) return;
      const dr = map[run.dr];
      for (let k = 0; k < run.len; ) {
        const tc = run.c + k;
        if (!this._seenHas(r, tc) || this._seenHas(dr, delAt(run, k))) {
          k++;
          continue;
        }
        let e = k + 1;
        while (e < run.len && this._seenHas(r, run.c + e) && !this._seenHas(dr, delAt(run, e))) e++;
        dels.push({ tr: r, tc, len: e - k, dr, dc: delAt(run, k), dir: e - k > 1 ? run.dir : 1 });
        k = e;
      }
    };
    for (const run of other._docRuns()) takeRun(run);
    for (const p of other._pending) takeRun(p);
    for (const d of other._pendingDeletes) {
      const dr = map[d.dr];
      for (let k = 0; k < d.len; k++) {
        if (this._seenHas(dr, recDelAt(d, k))) continue;
        dels.push({ tr: map[d.tr], tc: d.tc + k, len: 1, dr, dc: recDelAt(d, k), dir: 1 });
      }
    }
    for (const x of other._extra.values()) {
      const dr = map[x[2]];
      if (this._seenHas(dr, x[3])) continue;
      dels.push({ tr: map[x[0]], tc: x[1], len: 1, dr, dc: x[3], dir: 1 });
    }
    // Everything `other` has seen is now seen here.
    for (let i = 0; i < other._seen.length; i++) {
      const a = other._seen[i];
      for (let k = 0; k < a.length; k += 2) rangesAdd(this._seen[map[i]], a[k], a[k + 1]);
    }
    if (cands.length === 0 && dels.length === 0) return;
    // Waiting characters may integrate now.
    for (const p of this._pending) cands.push(p);
    this._pending = [];
    this._integrateAll(cands);
    for (const d of dels) this._applyDelete(d);
    this._retryPendingDeletes();
  }

  // --------------------------------------------------------- encoding

  // The canonical encoding, byte for byte Text::Encode().
  encode(zlib) {
    const raw = this._encodeBody();
    const w = new Writer();
    w.byte(FORMAT_VERSION);
    w.array(3);
    if (raw.length >= COMPRESS_ABOVE) {
      if (!zlib || typeof zlib.deflate !== 'function') throw new Error('text: encode needs zlib for a body of ' + raw.length + ' bytes');
      const packed = zlib.deflate(raw, { level: 6 });
      if (packed.length < raw.length) {
        w.uint(1);
        w.uint(raw.length);
        w.bin(packed);
        return w.take();
      }
    }
    w.uint(0);
    w.uint(raw.length);
    w.bin(raw);
    return w.take();
  }

  _encodeBody() {
    const reps = this._reps;
    const n = reps.length;
    // Replicas with dots or named by an id, ascending; `rank` renames.
    const used = new Uint8Array(n);
    for (let i = 0; i < n; i++) used[i] = this._seen[i].length > 0 ? 1 : 0;
    const useRun = (x) => {
      used[x.r] = 1;
      if (x.lr !== NONE) used[x.lr] = 1;
      if (x.rr !== NONE) used[x.rr] = 1;
      if (x.dr !== NONE) used[x.dr] = 1;
    };
    this._doc.forEach(useRun);
    for (const p of this._pending) useRun(p);
    for (const d of this._pendingDeletes) used[d.tr] = used[d.dr] = 1;
    for (const x of this._extra.values()) used[x[0]] = used[x[2]] = 1;
    const order = [];
    for (let i = 0; i < n; i++) if (used[i]) order.push(i);
    order.sort((a, b) => compareReplica(reps[a], reps[b]));
    const rank = new Int32Array(n).fill(NONE);
    for (let i = 0; i < order.length; i++) rank[order[i]] = i;

    // Runs in document order, joined; the live text beside them.
    const runs = this._docRuns();
    const rc = new Writer();
    const lastEnd = new Array(order.length).fill(0);
    const lastDel = new Array(order.length).fill(0);
    let prevReplica = NONE;
    for (let i = 0; i < runs.length; i++) {
      const r = runs[i];
      const rr = rank[r.r];
      const leftMode = r.lr === NONE ? 0 : i > 0 && r.lr === runs[i - 1].r && r.lc === runs[i - 1].c + runs[i - 1].len - 1 ? 1 : 2;
      const rightMode = r.rr === NONE ? 0 : i + 1 < runs.length && r.rr === runs[i + 1].r && r.rc === runs[i + 1].c ? 1 : 2;
      const deleted = r.dr !== NONE;
      let flags = (deleted ? 1 : 0) | (rr === prevReplica ? 2 : 0) | (leftMode << 2) | (rightMode << 4);
      if (deleted) {
        if (r.dir < 0) flags |= 64;
        if (r.dr === r.r) flags |= 128;
      }
      rc.u(flags);
      if (rr !== prevReplica) rc.u(rr);
      rc.s(r.c - lastEnd[rr]);
      rc.u(r.len);
      if (leftMode === 2) {
        rc.u(rank[r.lr]);
        rc.s(r.lc - r.c);
      }
      if (rightMode === 2) {
        rc.u(rank[r.rr]);
        rc.s(r.rc - r.c);
      }
      if (deleted) {
        const dr = rank[r.dr];
        if (r.dr !== r.r) rc.u(dr);
        rc.s(r.dc - lastDel[dr]);
        lastDel[dr] = delAt(r, r.len - 1);
      }
      lastEnd[rr] = r.c + r.len;
      prevReplica = rr;
    }
    const text = utf8(this.content());

    // Pending runs: ascending by (rank, counter), joined.
    const pchars = [];
    for (const p of this._pending) {
      for (let k = 0; k < p.len; k++) {
        pchars.push({
          r: p.r,
          c: p.c + k,
          len: 1,
          lr: k === 0 ? p.lr : p.r,
          lc: k === 0 ? p.lc : p.c + k - 1,
          rr: p.rr,
          rc: p.rc,
          chars: p.dr === NONE ? [p.chars[k]] : null,
          dr: p.dr,
          dc: p.dr === NONE ? 0 : delAt(p, k),
          dir: 1,
        });
      }
    }
    // Pending deletes: one (target, dot) per character, sorted, rejoined.
    // A waiting character and waiting deletes of it name the same state in
    // whatever order they came (as crdt/text.cc writes them): the character
    // carries the smallest of its deletes' dots, the waiting deletes the
    // others, and a waiting delete the character carries is written once,
    // with the run. Ranks follow replica order, so tuple order is dot order.
    let pd = [];
    for (const d of this._pendingDeletes) {
      for (let k = 0; k < d.len; k++) pd.push([rank[d.tr], d.tc + k, rank[d.dr], recDelAt(d, k)]);
    }
    pd.sort(compareTuples);
    if (pd.length > 0) {
      const byTarget = new Map();  // "rank,counter" -> sorted dots [[rank, counter]...]
      for (const x of pd) {
        const t = `${x[0]},${x[1]}`;
        if (!byTarget.has(t)) byTarget.set(t, []);
        byTarget.get(t).push(x);
      }
      const drop = new Set();
      const add = [];
      for (const x of pchars) {
        if (x.dr === NONE) continue;
        const waiting = byTarget.get(`${rank[x.r]},${x.c}`);
        if (waiting === undefined) continue;
        const own = [rank[x.r], x.c, rank[x.dr], x.dc];
        drop.add(own.join(','));
        const least = waiting[0];
        if (compareTuples(least, own) < 0) {
          drop.add(least.join(','));
          add.push(own);
          x.dr = order[least[2]];
          x.dc = least[3];
        }
      }
      pd = pd.filter((x) => !drop.has(x.join(','))).concat(add);
      pd.sort(compareTuples);
    }
    const pdu = [];
    for (const x of pd) {
      if (pdu.length === 0 || compareTuples(pdu[pdu.length - 1], x) !== 0) pdu.push(x);
    }
    pchars.sort((a, b) => rank[a.r] - rank[b.r] || a.c - b.c);
    const pruns = [];
    for (const x of pchars) pushJoined(pruns, x);
    const pc = new Writer();
    const ptextParts = [];
    for (const r of pruns) {
      const deleted = r.dr !== NONE;
      pc.u(rank[r.r]);
      pc.u(r.c);
      pc.u(r.len);
      pc.u((deleted ? 1 : 0) | (r.lr === NONE ? 0 : 2) | (r.rr === NONE ? 0 : 4) | (deleted && r.dir < 0 ? 8 : 0));
      if (r.lr !== NONE) {
        pc.u(rank[r.lr]);
        pc.u(r.lc);
      }
      if (r.rr !== NONE) {
        pc.u(rank[r.rr]);
        pc.u(r.rc);
      }
      if (deleted) {
        pc.u(rank[r.dr]);
        pc.u(r.dc);
      } else {
        ptextParts.push(r.chars.join(''));
      }
    }
    const ptext = utf8(ptextParts.join(''));

    const dc = new Writer();
    for (let i = 0; i < pdu.length; ) {
      let j = i + 1;
      let dir = 1;
      if (
        j < pdu.length &&
        pdu[j][0] === pdu[i][0] &&
        pdu[j][1] === pdu[i][1] + 1 &&
        pdu[j][2] === pdu[i][2] &&
        (pdu[j][3] === pdu[i][3] + 1 || pdu[j][3] + 1 === pdu[i][3])
      ) {
        dir = pdu[j][3] === pdu[i][3] + 1 ? 1 : -1;
        while (j < pdu.length && pdu[j][0] === pdu[i][0] && pdu[j][1] === pdu[j - 1][1] + 1 && pdu[j][2] === pdu[i][2] && pdu[j][3] - pdu[j - 1][3] === dir) {
          j++;
        }
      }
      dc.u(pdu[i][0]);
      dc.u(pdu[i][1]);
      dc.u(j - i);
      dc.u(pdu[i][2]);
      dc.u(pdu[i][3]);
      dc.u(dir < 0 ? 1 : 0);
      i = j;
    }

    const ex = [];
    for (const x of this._extra.values()) ex.push([rank[x[0]], x[1], rank[x[2]], x[3]]);
    ex.sort(compareTuples);
    const xc = new Writer();
    for (const x of ex) for (const v of x) xc.u(v);

    const body = new Writer();
    body.array(8);
    body.array(order.length);
    for (const i of order) {
      body.array(2);
      body.str(reps[i].bytes);
      body.uint(reps[i].incarnation);
    }
    body.array(order.length);
    for (const i of order) {
      const vc = new Writer();
      const a = this._seen[i];
      let prev = 0;
      for (let k = 0; k < a.length; k += 2) {
        vc.u(a[k] - prev);
        vc.u(a[k + 1] - a[k]);
        prev = a[k + 1];
      }
      body.bin(vc.take());
    }
    body.bin(rc.take());
    body.bin(text);
    body.bin(pc.take());
    body.bin(ptext);
    body.bin(dc.take());
    body.bin(xc.take());
    return body.take();
  }

  // --------------------------------------------------------- decoding

  // A Text from bytes of Text::Encode (DecodeTrusted's checks: structure,
  // bounds, UTF-8, dots; the document order is taken as given). Throws an
  // Error naming what is wrong.
  static decode(bytes, zlib) {
    if (!(bytes instanceof Uint8Array)) throw new TypeError('text: decode needs a Uint8Array');
    if (bytes.length === 0) throw bad('empty input: missing format version byte');
    if (bytes.length > MAX_DECODE_BYTES) throw bad('input too large to decode');
    if (bytes[0] !== FORMAT_VERSION) throw bad('unsupported format version ' + bytes[0] + ' (expected 1)');
    const top = new Reader(bytes, 1);
    if (top.array() !== 3) throw bad('expected [packing, size, body]');
    const mode = top.uint64();
    const rawSize = top.uint64();
    const payload = top.bin();
    if (top.remaining() !== 0) throw bad('trailing bytes after value (' + top.remaining() + ')');
    let raw;
    if (mode === 0n) {
      if (rawSize !== BigInt(payload.length)) throw bad('body size does not match');
      raw = payload;
    } else if (mode === 1n) {
      if (rawSize < BigInt(COMPRESS_ABOVE)) throw bad('a packed body under the packing size');
      if (rawSize > BigInt(MAX_BODY_BYTES) || rawSize > BigInt(payload.length) * 1032n + 64n) {
        throw bad('compressed body claims ' + rawSize + ' bytes');
      }
      raw = inflateTo(zlib, payload, Number(rawSize));
    } else {
      throw bad('unknown packing ' + mode);
    }
    const t = new Text();
    t._decodeBody(raw);
    return t;
  }

  _decodeBody(raw) {
    const rd = new Reader(raw);
    if (rd.array() !== 8) throw bad('body: expected 8 elements');
    // Replicas.
    const nrep = rd.array();
    for (let i = 0; i < nrep; i++) {
      if (rd.array() !== 2) throw bad('replica id: expected 2 elements');
      const nb = rd.str();
      if (nb.length === 0 || nb.length > MAX_NODE_BYTES) throw bad('replica node id must be 1..256 bytes');
      const inc = rd.uint64();
      const rep = makeReplica(decodeNode(nb), inc);
      if (i > 0 && compareReplica(this._reps[i - 1], rep) >= 0) throw bad('replicas not ascending');
      this._intern(rep);
    }
    // Version.
    if (rd.array() !== nrep) throw bad('version: expected one entry per replica');
    for (let i = 0; i < nrep; i++) {
      const vr = new ColumnReader(rd.bin());
      let prev = 0;
      const a = this._seen[i];
      while (!vr.done()) {
        const gap = vr.u();
        const n = vr.u();
        if (gap === null || n === null) throw bad('truncated version');
        const lo = prev + gap;
        const hi = lo + n;
        if (lo < 1 || (prev > 0 && gap === 0) || n === 0 || hi > MAX_COUNTER + 1) {
          throw bad('version ranges not ascending, disjoint and in range');
        }
        a.push(lo, hi);
        prev = hi;
      }
    }
    const checkReplica = (r) => r !== null && r < nrep;
    // Every dot the state names: no two alike, all in the version.
    const dots = []; // [replica * 2^32 + lo, hi]
    const addDots = (r, lo, hi) => {
      if (lo < 1 || hi <= lo || hi > MAX_COUNTER + 1) return false;
      let missing = false;
      forEachMissing(this._seen[r], lo, hi, () => {
        missing = true;
      });
      if (missing) return false;
      dots.push([r * TWO32 + lo, hi]);
      return true;
    };
    const runDots = (r) => {
      if (!addDots(r.r, r.c, r.c + r.len)) return false;
      if (r.dr === NONE) return true;
      if (r.dir < 0 && r.dc < r.len) return false;
      if (r.dir > 0 && r.dc + r.len > MAX_COUNTER + 1) return false;
      const last = delAt(r, r.len - 1);
      return addDots(r.dr, Math.min(r.dc, last), Math.max(r.dc, last) + 1);
    };
    let chars = 0; // characters held, against MAX_DECODED_CHARS
    const count = (len) => {
      chars += len;
      if (chars > MAX_DECODED_CHARS) throw bad('more than ' + MAX_DECODED_CHARS + ' characters');
    };

    // Runs in document order.
    const rcol = new ColumnReader(rd.bin());
    const text = decodeUtf8Chars(rd.bin(), 'content');
    const runs = [];
    const rightImplicit = [];
    {
      const lastEnd = new Array(nrep).fill(0);
      const lastDel = new Array(nrep).fill(0);
      let prevReplica = NONE;
      let textAt = 0;
      while (!rcol.done()) {
        const flags = rcol.u();
        if (flags === null || flags >= 256) throw bad('bad run flags');
        const deleted = (flags & 1) !== 0;
        const leftMode = (flags >> 2) & 3;
        const rightMode = (flags >> 4) & 3;
        if (leftMode === 3 || rightMode === 3) throw bad('bad origin mode');
        if (!deleted && (flags & (64 | 128))) throw bad('delete flags on a live run');
        const r = { r: 0, c: 0, len: 0, lr: NONE, lc: 0, rr: NONE, rc: 0, chars: null, dr: NONE, dc: 0, dir: 1 };
        if (flags & 2) {
          if (prevReplica === NONE) throw bad('first run names no replica');
          r.r = prevReplica;
        } else {
          const rep = rcol.u();
          if (!checkReplica(rep)) throw bad('bad run replica');
          r.r = rep;
        }
        const dcnt = rcol.s();
        const len = rcol.u();
        if (dcnt === null || len === null) throw bad('truncated run');
        const counter = lastEnd[r.r] + dcnt;
        if (counter < 1 || len < 1 || counter + len > MAX_COUNTER + 1) throw bad('run ids out of range');
        r.c = counter;
        r.len = len;
        const explicitOrigin = (which) => {
          const rep = rcol.u();
          const delta = rep === null ? null : rcol.s();
          if (!checkReplica(rep) || delta === null) return false;
          const c = r.c + delta;
          if (c < 1 || c > MAX_COUNTER) return false;
          if (which === 'l') {
            r.lr = rep;
            r.lc = c;
          } else {
            r.rr = rep;
            r.rc = c;
          }
          return true;
        };
        if (leftMode === 1) {
          if (runs.length === 0) throw bad('first run has an implicit left origin');
          const p = runs[runs.length - 1];
          r.lr = p.r;
          r.lc = p.c + p.len - 1;
        } else if (leftMode === 2 && !explicitOrigin('l')) {
          throw bad('bad left origin');
        }
        if (rightMode === 2 && !explicitOrigin('r')) throw bad('bad right origin');
        if (deleted) {
          let rep = r.r;
          if (!(flags & 128)) {
            rep = rcol.u();
            if (!checkReplica(rep)) throw bad('bad delete replica');
          }
          const ddc = rcol.s();
          if (ddc === null) throw bad('truncated delete');
          const del = lastDel[rep] + ddc;
          if (del < 1 || del > MAX_COUNTER) throw bad('delete dot out of range');
          r.dr = rep;
          r.dc = del;
          r.dir = flags & 64 ? -1 : 1;
          if (r.dir < 0 && r.dc < r.len) throw bad('delete dots out of range');
          lastDel[rep] = delAt(r, r.len - 1);
        } else {
          if (textAt + r.len > text.length) throw bad('runs hold more text than the content');
          r.chars = text.slice(textAt, textAt + r.len);
          textAt += r.len;
        }
        lastEnd[r.r] = r.c + r.len;
        prevReplica = r.r;
        rightImplicit.push(rightMode === 1);
        if (!runDots(r)) throw bad('run names dots outside the version');
        count(r.len);
        runs.push(r);
      }
      if (textAt !== text.length) throw bad('content longer than the runs');
      for (let i = 0; i < runs.length; i++) {
        if (!rightImplicit[i]) continue;
        if (i + 1 === runs.length) throw bad('last run has an implicit right origin');
        runs[i].rr = runs[i + 1].r;
        runs[i].rc = runs[i + 1].c;
      }
    }

    // Pending runs.
    const pcol = new ColumnReader(rd.bin());
    const ptext = decodeUtf8Chars(rd.bin(), 'pending text');
    {
      let at = 0;
      while (!pcol.done()) {
        const rep = pcol.u();
        const counter = pcol.u();
        const len = pcol.u();
        const flags = pcol.u();
        if (!checkReplica(rep) || counter === null || len === null || flags === null || flags >= 16 || counter < 1 || len < 1 || counter + len > MAX_COUNTER + 1) {
          throw bad('bad pending run');
        }
        const r = { r: rep, c: counter, len, lr: NONE, lc: 0, rr: NONE, rc: 0, chars: null, dr: NONE, dc: 0, dir: 1 };
        const origin = () => {
          const orep = pcol.u();
          const oc = orep === null ? null : pcol.u();
          if (!checkReplica(orep) || oc === null || oc < 1 || oc > MAX_COUNTER) return null;
          return [orep, oc];
        };
        if (flags & 2) {
          const o = origin();
          if (o === null) throw bad('bad pending left origin');
          [r.lr, r.lc] = o;
        }
        if (flags & 4) {
          const o = origin();
          if (o === null) throw bad('bad pending right origin');
          [r.rr, r.rc] = o;
        }
        if (flags & 1) {
          const o = origin();
          if (o === null) throw bad('bad pending delete');
          [r.dr, r.dc] = o;
          r.dir = flags & 8 ? -1 : 1;
        } else {
          if (flags & 8) throw bad('delete flags on a live pending run');
          if (at + r.len > ptext.length) throw bad('pending runs hold more text than given');
          r.chars = ptext.slice(at, at + r.len);
          at += r.len;
        }
        for (const [orp, oc] of [
          [r.lr, r.lc],
          [r.rr, r.rc],
        ]) {
          if (orp !== NONE && orp === r.r && oc >= r.c && oc < r.c + r.len) throw bad('pending run is its own origin');
        }
        if (!runDots(r)) throw bad('pending run names dots outside the version');
        count(r.len);
        this._pending.push(r);
      }
      if (at !== ptext.length) throw bad('pending text longer than the runs');
    }

    // Pending deletes and second deletes.
    const dels = [];
    let waitingChars = 0;
    const dcol = new ColumnReader(rd.bin());
    const xcol = new ColumnReader(rd.bin());
    if (rd.remaining() !== 0) throw bad('trailing bytes after the body');
    while (!dcol.done()) {
      const tr = dcol.u();
      const tc = checkReplica(tr) ? dcol.u() : null;
      const len = tc === null ? null : dcol.u();
      const rep = len === null ? null : dcol.u();
      const dc = checkReplica(rep) ? dcol.u() : null;
      const dir = dc === null ? null : dcol.u();
      if (
        dir === null ||
        dir > 1 ||
        tc < 1 ||
        len < 1 ||
        tc + len > MAX_COUNTER + 1 ||
        dc < 1 ||
        dc > MAX_COUNTER ||
        (dir === 1 && dc < len) ||
        (dir === 0 && dc + len > MAX_COUNTER + 1)
      ) {
        throw bad('bad pending delete');
      }
      const rec = { tr, tc, len, dr: rep, dc, dir: dir === 1 ? -1 : 1 };
      const last = recDelAt(rec, rec.len - 1);
      if (!addDots(rec.dr, Math.min(rec.dc, last), Math.max(rec.dc, last) + 1)) {
        throw bad('pending delete names dots outside the version');
      }
      waitingChars += rec.len;
      if (waitingChars > MAX_WAITING_DELETE_CHARS) throw bad('waiting deletes of more than ' + MAX_WAITING_DELETE_CHARS + ' characters');
      dels.push({ rec, second: false });
    }
    while (!xcol.done()) {
      const tr = xcol.u();
      const tc = checkReplica(tr) ? xcol.u() : null;
      const rep = tc === null || tc < 1 || tc > MAX_COUNTER ? null : xcol.u();
      const dc = checkReplica(rep) ? xcol.u() : null;
      if (dc === null) throw bad('bad second delete');
      if (!addDots(rep, dc, dc + 1)) throw bad('second delete names a dot outside the version');
      dels.push({ rec: { tr, tc, len: 1, dr: rep, dc, dir: 1 }, second: true });
    }
    dots.sort((a, b) => a[0] - b[0]);
    for (let i = 1; i < dots.length; i++) {
      if (Math.floor(dots[i][0] / TWO32) === Math.floor(dots[i - 1][0] / TWO32) && dots[i][0] % TWO32 < dots[i - 1][1]) {
        throw bad('two events share a dot');
      }
    }

    // The document, in the order given.
    const items = new Array(chars - this._pending.reduce((s, p) => s + p.len, 0));
    let k = 0;
    for (const r of runs) {
      for (let j = 0; j < r.len; j++) {
        items[k++] =
          j === 0
            ? newItem(r.r, r.c, r.lr, r.lc, r.rr, r.rc, r.chars === null ? null : r.chars[0], r.dr, r.dr === NONE ? 0 : r.dc)
            : newItem(r.r, r.c + j, r.r, r.c + j - 1, r.rr, r.rc, r.chars === null ? null : r.chars[j], r.dr, r.dr === NONE ? 0 : delAt(r, j));
      }
    }
    this._doc.load(items);
    // Origins are characters of the document, on their sides (a merge
    // relies on that).
    const index = new Map();
    for (let i = 0; i < items.length; i++) index.set(idKey(items[i].r, items[i].c), i);
    for (let i = 0; i < items.length; i++) {
      const it = items[i];
      if (it.lr !== NONE) {
        const l = index.get(idKey(it.lr, it.lc));
        if (l === undefined || l >= i) throw bad('a left origin that is not before its character');
      }
      if (it.rr !== NONE) {
        const r = index.get(idKey(it.rr, it.rc));
        if (r === undefined || r <= i) throw bad('a right origin that is not after its character');
      }
    }
    // Waiting deletes are of absent characters; a second delete names a
    // deleted character whose first delete has the smaller dot.
    for (const { rec, second } of dels) {
      if (!second) {
        for (let j = 0; j < rec.len; j++) {
          if (this._doc.get(rec.tr, rec.tc + j) !== undefined) throw bad('a waiting delete of a character that is here');
        }
        this._pendingDeletes.push(rec);
        continue;
      }
      const it = this._doc.get(rec.tr, rec.tc);
      if (it === undefined || it.dr === NONE || !this._dotLess(it.dr, it.dc, rec.dr, rec.dc)) {
        throw bad('a second delete of a character not deleted first by a smaller dot');
      }
      this._extraAdd(rec.tr, rec.tc, rec.dr, rec.dc);
    }
  }
}

function compareTuples(a, b) {
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== b[i]) return a[i] < b[i] ? -1 : 1;
  }
  return 0;
}

// Code points of UTF-8 bytes (well-formed, else an Error).
function decodeUtf8Chars(b, what) {
  let s;
  try {
    s = utf8Decoder.decode(b);
  } catch {
    throw bad(what + ' is not valid UTF-8');
  }
  return codePoints(s);
}

// Inflates a zlib stream that must give exactly `size` bytes; stops as
// soon as it gives more.
function inflateTo(zlib, payload, size) {
  if (!zlib || (typeof zlib.inflate !== 'function' && typeof zlib.Inflate !== 'function')) {
    throw bad('decode needs zlib for a packed body');
  }
  let out;
  if (typeof zlib.Inflate === 'function') {
    out = new Uint8Array(size);
    let n = 0;
    const tooLong = new Error('too long');
    const inf = new zlib.Inflate({ chunkSize: Math.min(size + 1024, 1 << 16) });
    inf.onData = (chunk) => {
      if (n + chunk.length > size) throw tooLong; // stops the inflation
      out.set(chunk, n);
      n += chunk.length;
    };
    let ok;
    try {
      ok = inf.push(payload, true);
    } catch {
      ok = false;
    }
    if (!ok || !inf.ended || inf.err !== 0 || n !== size) throw bad('compressed body does not inflate to its size');
    return out;
  }
  try {
    out = zlib.inflate(payload);
  } catch {
    throw bad('compressed body does not inflate to its size');
  }
  if (!(out instanceof Uint8Array) || out.length !== size) throw bad('compressed body does not inflate to its size');
  return out;
}
