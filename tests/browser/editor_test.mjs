#!/usr/bin/env node
// The editor demo (demo/) in a real browser against real meridiand processes.
//
//   node tests/browser/editor_test.mjs --meridiand build/node/meridiand \
//        [--out DIR] [--chromium /usr/bin/chromium] [--demo-dir DIR] [--keep]
//
// --demo-dir: the page's files (default: this checkout's demo/), passed to
// meridiand; --keep: keep the temporary directory (topology, data, logs).
//
// ctest runs it as editor_browser_test (label browser; tests/CMakeLists.txt).
// It needs playwright-core in tests/browser/node_modules (`./dev deps` runs
// `npm ci` there; no browser is downloaded) and Debian's chromium.
//
// Two regions with one node each (a temporary topology on free loopback
// ports, fault injection on) serve /demo/. One headless Chromium page per
// region opens /demo/?doc=<random key>, and then:
//   0. each page lists both editors (presence crosses regions);
//   1. both type at once (keyboard typing: accents, emoji, Enter,
//      Backspace, caret moves) and must converge;
//   2. the first page cuts its region off with the page's toggle; both
//      type; their texts (and the nodes' GET /v1/text) must differ;
//   3. the toggle heals the cut; both must converge within 30 s;
//   4. the second region's node is stopped while its page keeps typing
//      (offline edits), then started again: the page reconnects, and all
//      must converge.
// At the end both textareas, both pages' replicas and GET /v1/text/<key> of
// both nodes must be identical; every typed code point must be there
// exactly once (nothing lost, nothing duplicated), each page's typing must
// be one contiguous run (carets kept in place while remote edits arrive),
// emoji intact (no lone surrogate; the node's code-point length agrees).
// Screenshots (each page, and both side by side) go to --out. The whole run
// is bounded (TOTAL_MS); meridiand children are stopped on every exit path.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const TOTAL_MS = 120_000;
const HEAL_MS = 30_000;
const here = path.dirname(fileURLToPath(import.meta.url));

// ------------------------------------------------------------------ options

function parseArgs(argv) {
  const o = {
    meridiand: null,
    out: path.resolve('test-output/browser'),
    chromium: '/usr/bin/chromium',
    'demo-dir': path.resolve(here, '../../demo'),
    keep: false,
  };
  for (let i = 0; i < argv.length; ++i) {
    const a = argv[i];
    if (a === '--keep') o.keep = true;
    else if (['--meridiand', '--out', '--chromium', '--demo-dir'].includes(a) && i + 1 < argv.length) {
      o[a.slice(2)] = path.resolve(argv[++i]);
    } else {
      console.error(`editor_test: unknown or incomplete option '${a}'`);
      process.exit(2);
    }
  }
  if (!o.meridiand) {
    console.error('usage: editor_test.mjs --meridiand PATH [--out DIR] [--chromium PATH] [--demo-dir DIR] [--keep]');
    process.exit(2);
  }
  return o;
}

const opts = parseArgs(process.argv.slice(2));
const t0 = Date.now();
const log = (...a) => console.log(`[${((Date.now() - t0) / 1000).toFixed(1).padStart(5)} s]`, ...a);

class TestFailure extends Error {}
function check(cond, message) {
  if (!cond) throw new TestFailure(message);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Polls `probe` (async; returns a truthy value when done) every `every` ms
// until `ms` have passed; throws naming `what` and the last state.
async function waitFor(what, ms, probe, describe = async () => '', every = 100) {
  const end = Date.now() + ms;
  for (let i = 0; ; ++i) {
    const got = await probe();
    if (got) return got;
    if (Date.now() >= end) {
      throw new TestFailure(`timed out after ${ms} ms waiting for ${what}${await describe()}`);
    }
    await sleep(every);
  }
}

// ------------------------------------------------------------------ cluster

const children = new Set();  // meridiand processes still running

function ephemeralLow() {
  try {
    const [low] = fs.readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    if (low > 0) return low;
  } catch { /* not Linux */ }
  return 32768;
}

function canBind(port) {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

// Distinct free loopback ports, below the ephemeral range when there is room
// (so that outgoing connections cannot take them before meridiand binds).
async function freePorts(n) {
  const low = ephemeralLow();
  const ports = new Set();
  for (let attempt = 0; ports.size < n && attempt < 500; ++attempt) {
    const p = low >= 12000 ? 10000 + Math.floor(Math.random() * (low - 10000)) : 0;
    if (p === 0) {
      const got = await new Promise((resolve) => {
        const s = net.createServer();
        s.listen(0, '127.0.0.1', () => { const q = s.address().port; s.close(() => resolve(q)); });
      });
      ports.add(got);
    } else if (!ports.has(p) && await canBind(p)) {
      ports.add(p);
    }
  }
  check(ports.size === n, 'no free loopback ports found');
  return [...ports];
}

class Cluster {
  constructor(dir) {
    this.dir = dir;
    this.nodes = [
      { region: 'us-east', id: 'us-east-1' },
      { region: 'eu-west', id: 'eu-west-1' },
    ];
  }

  async writeTopology() {
    const ports = await freePorts(2 * this.nodes.length);
    let toml = '# editor_browser_test: two regions, one node each\n' +
      '[cluster]\nname = "browser-test"\nheartbeat_interval_ms = 200\n' +
      'anti_entropy_interval_ms = 500\nsync = false\n';
    this.nodes.forEach((n, i) => {
      n.http = ports[2 * i];
      n.gossip = ports[2 * i + 1];
      n.url = `http://127.0.0.1:${n.http}`;
      n.dataDir = path.join(this.dir, n.id);
      n.log = path.join(this.dir, `${n.id}.log`);
      toml += `\n[[region]]\nname = "${n.region}"\n\n  [[region.node]]\n  id       = "${n.id}"\n` +
        `  http     = "127.0.0.1:${n.http}"\n  gossip   = "tcp://127.0.0.1:${n.gossip}"\n` +
        `  data_dir = "${n.dataDir}"\n`;
    });
    this.topology = path.join(this.dir, 'topology.toml');
    fs.writeFileSync(this.topology, toml);
  }

  spawnNode(n, extra = []) {
    const out = fs.openSync(n.log, 'a');
    const args = ['--config', this.topology, '--node', n.id, '--enable-fault-injection',
                  '--demo-dir', opts['demo-dir'], ...extra];
    const child = spawn(opts.meridiand, args, { cwd: this.dir, stdio: ['ignore', out, out] });
    fs.closeSync(out);
    n.proc = child;
    n.exited = null;
    children.add(child);
    child.on('exit', (code, signal) => {
      n.exited = { code, signal };
      children.delete(child);
    });
    child.on('error', (e) => {
      n.exited = { error: e.message };
      children.delete(child);
    });
  }

  logTail(n, lines = 15) {
    try {
      return fs.readFileSync(n.log, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
    } catch {
      return '(no log)';
    }
  }

  async health(n) {
    try {
      const res = await fetch(`${n.url}/v1/health`, { signal: AbortSignal.timeout(1000) });
      if (res.status !== 200) return false;
      const body = await res.json();
      return body.writable === undefined || body.writable === true;
    } catch {
      return false;
    }
  }

  // Waits until every node in `which` answers /v1/health writable.
  async awaitWritable(which, ms = 30_000) {
    const end = Date.now() + ms;
    const waiting = new Set(which);
    while (waiting.size) {
      for (const n of [...waiting]) {
        if (n.exited) {
          throw new TestFailure(`meridiand ${n.id} exited during start-up (${JSON.stringify(n.exited)}); ` +
                                `the end of ${n.log}:\n${this.logTail(n)}`);
        }
        if (await this.health(n)) waiting.delete(n);
      }
      if (!waiting.size) break;
      if (Date.now() >= end) {
        throw new TestFailure(`not writable after ${ms} ms: ${[...waiting].map((n) => n.id).join(', ')}`);
      }
      await sleep(100);
    }
  }

  // Starts every node of a new cluster (the first with --bootstrap); picks
  // new ports when one was taken in between.
  async start() {
    for (let attempt = 1; ; ++attempt) {
      await this.writeTopology();
      this.nodes.forEach((n, i) => this.spawnNode(n, i === 0 ? ['--bootstrap'] : []));
      try {
        await this.awaitWritable(this.nodes);
        return;
      } catch (e) {
        const inUse = this.nodes.some((n) => /address already in use|cannot bind|cannot listen/i.test(this.logTail(n, 50)));
        await this.stopAll();
        if (!inUse || attempt >= 3) throw e;
        log('a port was taken; starting again on new ports');
        for (const n of this.nodes) fs.rmSync(n.dataDir, { recursive: true, force: true });
      }
    }
  }

  async stopNode(n, ms = 10_000) {
    const child = n.proc;
    if (!child || n.exited) return;
    const gone = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), ms);
    await gone;
    clearTimeout(timer);
  }

  async stopAll() {
    await Promise.all(this.nodes.map((n) => this.stopNode(n)));
  }
}

// Last resort: no meridiand outlives this process.
process.on('exit', () => {
  for (const c of children) {
    try { c.kill('SIGKILL'); } catch { /* gone */ }
  }
});

// ------------------------------------------------------------------ HTTP

async function getText(n, key) {
  const res = await fetch(`${n.url}/v1/text/${encodeURIComponent(key)}`, { signal: AbortSignal.timeout(5000) });
  const body = await res.text();
  check(res.status === 200, `GET /v1/text of ${n.id} answered ${res.status}: ${body}`);
  return JSON.parse(body);
}

async function getFaults(n) {
  const res = await fetch(`${n.url}/v1/admin/faults`, { signal: AbortSignal.timeout(5000) });
  check(res.status === 200, `GET /v1/admin/faults of ${n.id} answered ${res.status}`);
  return res.json();
}

// ------------------------------------------------------------------ pages

const cps = (s) => [...s];

// One browser page on one region, and the text its user has typed: a model
// of this page's own run in the document (code points, caret), which must
// appear contiguously in the final text.
class Editor {
  constructor(name, node, page) {
    this.name = name;
    this.node = node;
    this.page = page;
    this.run = [];      // code points of this page's run, as typed
    this.caret = 0;     // in this.run
    this.typed = [];    // every code point typed (before Backspace)
    this.problems = []; // uncaught page errors
    page.on('pageerror', (e) => this.problems.push(e.message));
    page.on('console', (m) => {
      if (m.type() === 'error' || m.type() === 'warning') log(`${name} console ${m.type()}: ${m.text()}`);
    });
  }

  hook(fn, arg) {
    return this.page.evaluate(fn, arg);
  }

  async state() {
    return this.page.evaluate(() => {
      const m = window.meridianEditor;
      const ta = document.getElementById('editor');
      return m ? {
        text: m.text(), value: ta.value, connected: m.connected(), pending: m.pending(),
        cut: m.cut(), errors: m.errors(), caret: ta.selectionStart, caretEnd: ta.selectionEnd,
        problem: document.getElementById('problem').hidden ? '' : document.getElementById('problem').textContent,
        status: document.getElementById('status').textContent,
      } : null;
    });
  }

  // Typing, with the model kept in step. Backspace and arrows are only
  // used next to single-code-point graphemes, so one press is one code point.
  async type(text, delay = 12) {
    await this.page.keyboard.type(text, { delay });
    const c = cps(text);
    this.run.splice(this.caret, 0, ...c);
    this.caret += c.length;
    this.typed.push(...c);
  }

  async backspace(times) {
    for (let i = 0; i < times; ++i) {
      await this.page.keyboard.press('Backspace');
      check(this.caret > 0, `${this.name}: Backspace at the start of its run`);
      this.run.splice(--this.caret, 1);
    }
  }

  async left(times) {
    for (let i = 0; i < times; ++i) {
      await this.page.keyboard.press('ArrowLeft');
      this.caret = Math.max(0, this.caret - 1);
    }
  }

  async right(times) {
    for (let i = 0; i < times; ++i) {
      await this.page.keyboard.press('ArrowRight');
      this.caret = Math.min(this.run.length, this.caret + 1);
    }
  }

  runText() {
    return this.run.join('');
  }
}

async function describe(editors) {
  const parts = [];
  for (const e of editors) {
    const s = await e.state().catch((err) => ({ error: err.message }));
    parts.push(`\n  ${e.name}: ${JSON.stringify(s)}`);
  }
  return parts.join('');
}

// Waits until both pages show the same text, with nothing unacknowledged,
// and (when `nodes`) both nodes' GET /v1/text agree with it.
async function converge(editors, ms, what, nodesToo = true) {
  return waitFor(what, ms, async () => {
    const s = await Promise.all(editors.map((e) => e.state()));
    if (s.some((x) => !x || !x.connected || x.pending !== 0)) return false;
    if (s.some((x) => x.text !== s[0].text || x.value !== s[0].text)) return false;
    if (nodesToo) {
      const t = await Promise.all(editors.map((e) => getText(e.node, key)));
      if (t.some((x) => x.value !== s[0].text)) return false;
    }
    return s[0].text;
  }, () => describe(editors), 150);
}

function countsOf(points) {
  const m = new Map();
  for (const c of points) m.set(c, (m.get(c) || 0) + 1);
  return m;
}

const show = (c) => `'${c}' (U+${c.codePointAt(0).toString(16).toUpperCase().padStart(4, '0')})`;

// Every code point typed and not deleted is in `text` exactly once.
function checkEveryCharacter(text, editors) {
  const want = countsOf(editors.flatMap((e) => e.run));
  const got = countsOf(cps(text));
  const missing = [], extra = [];
  for (const [c, n] of want) if ((got.get(c) || 0) < n) missing.push(`${show(c)} ${got.get(c) || 0}/${n}`);
  for (const [c, n] of got) if ((want.get(c) || 0) < n) extra.push(`${show(c)} ${n}/${want.get(c) || 0}`);
  check(!missing.length && !extra.length,
        `typed characters lost: [${missing.join(', ')}]; duplicated or foreign: [${extra.join(', ')}]` +
        `\n  text: ${JSON.stringify(text)}`);
  const typed = editors.reduce((a, e) => a + e.typed.length, 0);
  log(`every character: ${cps(text).length} code points present of ${typed} typed (the rest were Backspaced)`);
}

// Each page's run is one contiguous piece of the text, and together they
// are all of it.
function checkRuns(text, editors) {
  const runs = editors.map((e) => e.runText());
  for (let i = 0; i < editors.length; ++i) {
    check(text.includes(runs[i]), `${editors[i].name}'s typing is not one contiguous run in the text ` +
          `(a caret moved or characters interleaved)\n  run:  ${JSON.stringify(runs[i])}\n  text: ${JSON.stringify(text)}`);
  }
  check(text === runs[0] + runs[1] || text === runs[1] + runs[0],
        `the text is not the two runs one after the other\n  text: ${JSON.stringify(text)}`);
}

function checkUnicode(text, nodeLength) {
  check(!/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(text),
        `the text holds a lone surrogate: ${JSON.stringify(text)}`);
  for (const s of ['👩\u200d💻', '🎉', 'café', 'naïve', 'crème brûlée', '🌍']) {
    check(text.includes(s), `'${s}' is not intact in the text: ${JSON.stringify(text)}`);
  }
  check(nodeLength === cps(text).length,
        `the node counts ${nodeLength} code points, the page ${cps(text).length}`);
}

// The caret of each page sits where its model says (after its own run's
// character left of the caret), converted from code points to UTF-16.
async function checkCarets(text, editors) {
  for (const e of editors) {
    const s = await e.state();
    const runStart = cps(text.slice(0, text.indexOf(e.runText()))).length;
    const wantCp = runStart + e.caret;
    const want = cps(text).slice(0, wantCp).join('').length;
    check(s.caret === want && s.caretEnd === want,
          `${e.name}'s caret is at UTF-16 ${s.caret}..${s.caretEnd}, expected ${want} (code point ${wantCp})`);
  }
}

// ------------------------------------------------------------------ the test

const key = `browser-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
let cluster = null;
let browser = null;
let editors = [];

async function screenshots(prefix) {
  fs.mkdirSync(opts.out, { recursive: true });
  const files = [];
  for (const e of editors) {
    const f = path.join(opts.out, `${prefix}-${e.node.region}.png`);
    await e.page.screenshot({ path: f, fullPage: false });
    files.push(f);
  }
  return files;
}

// Both pages side by side in one picture (a third page shows the two).
async function sideBySide(files, target) {
  const ctx = await browser.newContext({ viewport: { width: 1200, height: 640 }, deviceScaleFactor: 1 });
  const page = await ctx.newPage();
  const imgs = files.map((f) => `<img src="data:image/png;base64,${fs.readFileSync(f).toString('base64')}">`).join('');
  await page.setContent(`<body style="margin:0;display:flex;background:#ccd">${imgs}</body>` +
                        '<style>img{width:600px;height:640px;border-right:1px solid #99a}</style>');
  await page.screenshot({ path: target });
  await ctx.close();
}

async function main() {
  let playwright;
  try {
    playwright = await import('playwright-core');
  } catch (e) {
    throw new TestFailure(`cannot load playwright-core from ${path.join(here, 'node_modules')} ` +
                          `(run ./dev deps, or npm ci in tests/browser): ${e.message}`);
  }
  check(fs.existsSync(opts.meridiand), `no meridiand at ${opts.meridiand}`);
  check(fs.existsSync(opts.chromium), `no browser at ${opts.chromium} (Debian package chromium)`);
  for (const f of ['index.html', 'editor.js', 'text.js']) {
    check(fs.existsSync(path.join(opts['demo-dir'], f)), `no ${f} in ${opts['demo-dir']}`);
  }

  fs.mkdirSync(opts.out, { recursive: true });
  for (const f of fs.readdirSync(opts.out)) {
    if (/^(failure|editor)-.*\.png$/.test(f)) fs.rmSync(path.join(opts.out, f));  // an earlier run's
  }

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'meridian-browser-'));
  cluster = new Cluster(dir);
  await cluster.start();
  const [east, west] = cluster.nodes;
  log(`cluster up: ${east.id} ${east.url}, ${west.id} ${west.url}; document '${key}'`);

  browser = await playwright.chromium.launch({
    executablePath: opts.chromium,
    headless: true,
    args: ['--no-sandbox', '--disable-background-networking'],
  });
  for (const [name, n] of [['A', east], ['B', west]]) {
    const ctx = await browser.newContext({ viewport: { width: 600, height: 640 }, deviceScaleFactor: 1 });
    const page = await ctx.newPage();
    editors.push(new Editor(`page ${name} (${n.region})`, n, page));
  }
  const [a, b] = editors;

  // The page itself, from each node.
  for (const e of editors) {
    const res = await e.page.goto(`${e.node.url}/demo/?doc=${encodeURIComponent(key)}`);
    check(res && res.status() === 200, `GET /demo/ of ${e.node.id} answered ${res && res.status()}`);
  }
  await waitFor('both pages to say hello', 15_000,
                async () => (await Promise.all(editors.map((e) => e.hook(() => !!window.meridianEditor?.connected()))))
                  .every(Boolean), () => describe(editors));
  for (const e of editors) {
    const shown = await e.page.evaluate(() => ({
      region: document.getElementById('region').textContent,
      node: document.getElementById('node').textContent,
      me: document.querySelectorAll('#sessions li.me').length,
      toggle: !document.getElementById('fault').hidden,
      label: document.getElementById('fault-toggle').textContent,
    }));
    check(shown.region === e.node.region && shown.node === e.node.id,
          `${e.name} shows region '${shown.region}', node '${shown.node}'`);
    check(shown.me === 1, `${e.name} marks itself ${shown.me} times among the sessions`);
    check(shown.toggle && shown.label === 'Cut this region off', `${e.name}: fault toggle ${JSON.stringify(shown)}`);
    await e.page.click('#editor');
  }
  // Presence crosses regions: each page lists itself and the other page.
  await waitFor('each page to list both editors', 15_000, async () => {
    for (const e of editors) {
      const other = editors.find((x) => x !== e).node;
      const list = await e.page.evaluate(() => [...document.querySelectorAll('#sessions li')]
        .map((li) => ({ me: li.classList.contains('me'), text: li.textContent })));
      if (list.length !== 2 || list.filter((x) => x.me).length !== 1) return false;
      if (!list.some((x) => !x.me && x.text.includes(other.region) && x.text.includes(other.id))) return false;
    }
    return true;
  }, async () => {
    const lists = await Promise.all(editors.map((e) => e.page.textContent('#sessions')));
    return `: ${JSON.stringify(lists)}`;
  }, 200);
  log('both pages connected, each lists both editors');

  // 1. Both type at once.
  await Promise.all([
    (async () => {
      await a.type('From us-east: café, naïve 👩\u200d💻 and ');
      await a.type('typo');
      await a.backspace(4);
      await a.type('déjà vu');
      await a.left(7);
      await a.type('a ');
      await a.right(7);
      await a.type('.\n');
    })(),
    (async () => {
      await b.type('From eu-west: crème brûlée 🎉 for ');
      await b.type('everyone');
      await b.backspace(3);
      await b.type('body!');
      await b.left(5);
      await b.type('Some');
      await b.backspace(4);
      await b.right(5);
      await b.type(' ¿Qué tal? 🌍\n');
    })(),
  ]);
  let text = await converge(editors, 15_000, 'both pages to converge after typing at once');
  checkRuns(text, editors);
  await checkCarets(text, editors);
  log(`converged: ${JSON.stringify(text)}`);

  // 2. The first region cut off with its page's toggle; both type.
  await a.page.click('#fault-toggle');
  await waitFor('the toggle to cut us-east off', 5_000, () => a.hook(() => window.meridianEditor.cut()));
  check(await a.page.textContent('#fault-toggle') === 'Reconnect region', 'the toggle offers to reconnect');
  check(JSON.stringify((await getFaults(east)).drop) === JSON.stringify([west.id]),
        `${east.id} drops ${JSON.stringify((await getFaults(east)).drop)}`);
  // focus() gives the textarea back its selection (a click would move it).
  await a.page.focus('#editor');
  await b.page.focus('#editor');
  await checkCarets(text, editors);
  const cutA = 'Typed in us-east while cut off ✂️\n';
  const cutB = 'Meanwhile in eu-west: Übermut 👩\u200d💻\n';
  await Promise.all([a.type(cutA), b.type(cutB)]);
  await waitFor('both pages to have their edits acknowledged while cut off', 10_000, async () =>
    (await Promise.all(editors.map((e) => e.state()))).every((s) => s.connected && s.pending === 0),
  () => describe(editors));
  await sleep(1500);  // three anti-entropy intervals: nothing may cross the cut
  const [sa, sb] = await Promise.all(editors.map((e) => e.state()));
  check(sa.text !== sb.text, 'the texts are identical while us-east is cut off');
  check(sa.text.includes(cutA) && !sa.text.includes(cutB), `us-east's page while cut off: ${JSON.stringify(sa.text)}`);
  check(sb.text.includes(cutB) && !sb.text.includes(cutA), `eu-west's page while cut off: ${JSON.stringify(sb.text)}`);
  const [ga, gb] = await Promise.all([getText(east, key), getText(west, key)]);
  check(ga.value === sa.text && gb.value === sb.text, 'while cut off each node holds what its page shows');
  log('diverged while cut off, as expected');

  // 3. Heal with the toggle.
  const healStart = Date.now();
  await a.page.click('#fault-toggle');
  await waitFor('the toggle to reconnect us-east', 5_000, async () => !(await a.hook(() => window.meridianEditor.cut())));
  check(await a.page.textContent('#fault-toggle') === 'Cut this region off', 'the toggle offers to cut off again');
  text = await converge(editors, HEAL_MS, `both pages to converge within ${HEAL_MS / 1000} s of healing`);
  log(`healed and converged in ${Date.now() - healStart} ms`);
  checkRuns(text, editors);
  await a.page.focus('#editor');  // back from the toggle, caret where it was
  await checkCarets(text, editors);

  // 4. eu-west's node stops; its page keeps typing offline; the node comes
  //    back and the page reconnects and sends what the node lacks.
  await cluster.stopNode(west);
  await waitFor('page B to notice its node is gone', 10_000, async () => !(await b.hook(() => window.meridianEditor.connected())));
  const offline = 'Offline in eu-west: señal perdida 📴\n';
  await b.type(offline);
  await a.type('Still here 👋\n');
  cluster.spawnNode(west);
  await cluster.awaitWritable([west]);
  log(`${west.id} restarted`);
  text = await converge(editors, HEAL_MS, 'both pages to converge after eu-west restarted');
  log(`converged after the restart: ${JSON.stringify(text)}`);

  // Final checks.
  const values = await Promise.all(editors.map((e) => e.page.inputValue('#editor')));
  const replicas = await Promise.all(editors.map((e) => e.hook(() => window.meridianEditor.text())));
  const nodes = await Promise.all([getText(east, key), getText(west, key)]);
  check(values.every((v) => v === text) && replicas.every((v) => v === text),
        `textareas ${JSON.stringify(values)} and replicas ${JSON.stringify(replicas)} differ`);
  check(nodes.every((n) => n.value === text), `the nodes hold ${JSON.stringify(nodes.map((n) => n.value))}`);
  checkEveryCharacter(text, editors);
  checkRuns(text, editors);
  checkUnicode(text, nodes[0].length);
  await checkCarets(text, editors);
  for (const e of editors) {
    const s = await e.state();
    // A refusal the page cured by sending again (say clock_skew while a
    // restarted node gathers clock samples) is counted, not shown.
    check(!s.problem, `${e.name} shows a problem: ${s.problem}`);
    if (s.errors) log(`${e.name} had ${s.errors} refused message(s), since cured`);
    check(!e.problems.length, `${e.name} threw: ${e.problems.join('; ')}`);
  }

  const files = await screenshots('editor');
  await sideBySide(files, path.join(opts.out, 'editor-both.png'));
  log(`screenshots in ${opts.out}`);
}

async function cleanup(failed) {
  if (failed && editors.length) {
    try {
      const files = await screenshots('failure');
      log(`failure screenshots: ${files.join(', ')}`);
    } catch (e) {
      log(`no failure screenshots: ${e.message}`);
    }
  }
  if (browser) await browser.close().catch(() => {});
  if (cluster) {
    await cluster.stopAll().catch(() => {});
    if (failed) {
      for (const n of cluster.nodes) {
        console.log(`---- the end of ${n.id}'s log (${n.log}) ----\n${cluster.logTail(n, 30)}`);
      }
    }
    if (opts.keep || failed) {
      log(`kept ${cluster.dir}`);
    } else {
      fs.rmSync(cluster.dir, { recursive: true, force: true });
    }
  }
}

let finished = false;
const overall = setTimeout(async () => {
  if (finished) return;
  finished = true;
  console.error(`FAIL editor_browser_test: not done after ${TOTAL_MS / 1000} s`);
  await cleanup(true).catch(() => {});
  process.exit(1);
}, TOTAL_MS);

for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, async () => {
    console.error(`editor_browser_test: ${sig}; stopping`);
    finished = true;
    await cleanup(true).catch(() => {});
    process.exit(1);
  });
}

try {
  await main();
  if (!finished) {
    finished = true;
    await cleanup(false);
    clearTimeout(overall);
    log('PASS editor_browser_test');
    console.log('1 passed, 0 failed');
  }
} catch (e) {
  if (!finished) {
    finished = true;
    console.error(`FAIL editor_browser_test: ${e instanceof TestFailure ? e.message : e.stack}`);
    await cleanup(true).catch(() => {});
    clearTimeout(overall);
    console.log('0 passed, 1 failed');
    process.exitCode = 1;
  }
}
