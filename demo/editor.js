// The collaborative editor of the demo page (index.html): one textarea on a
// text document of the node that serves the page, live over
// GET /v1/stream/text/{key} (protocol: README "Live text").
//
// The page keeps its own replica of the document (text.js, the same CRDT as
// the node's). Typing edits the replica at once and sends the edit's delta;
// deltas from the node merge into the replica, and the caret and selection
// stay on the characters they were next to. After a reconnect the page
// merges the node's state into its replica and sends what the node lacks,
// so edits made while offline (or not yet acknowledged) are not lost.
//
// Test hook: window.meridianEditor (see the end of this file).

import * as pako from './vendor/pako.esm.mjs';
import {
  Text,
  utf16ToCodePoints,
  codePointsToUtf16,
  bytesToBase64url,
  base64urlToBytes,
} from './text.js';

// Inflate lets text.js inflate in bounded steps (no deflate bombs).
const zlib = {
  deflate: (bytes) => pako.deflate(bytes, { level: 6 }),
  inflate: (bytes) => pako.inflate(bytes),
  Inflate: pako.Inflate,
};

// Ops messages sent and not yet acknowledged; beyond this, local edits
// gather in the outbox and go as one message when an ack comes.
const MAX_IN_FLIGHT = 4;
const BACKOFF_MIN_MS = 250;
const BACKOFF_MAX_MS = 8000;
// A message the node refused for now (it takes no writes yet: clock
// samples, bootstrapping) is sent again after this, doubling.
const RETRY_MIN_MS = 500;
const RETRY_MAX_MS = 8000;
// Refusals that sending again cannot cure.
const PERMANENT = new Set(['bad_request', 'type_mismatch']);

const key = new URLSearchParams(location.search).get('doc') || 'welcome';
// A node with API tokens (README "Security") needs one: open the page as
// /demo/?doc=D#token=T. The fragment is never sent to the server; the
// token goes on the WebSocket as ?access_token= (browsers cannot set its
// headers) and on fetches as Authorization: Bearer.
const token = new URLSearchParams(location.hash.slice(1)).get('token') || '';
const authHeaders = token ? { Authorization: `Bearer ${token}` } : {};

const $ = (id) => document.getElementById(id);
const ui = {
  doc: $('doc'),
  region: $('region'),
  node: $('node'),
  status: $('status'),
  editor: $('editor'),
  problem: $('problem'),
  sessions: $('sessions'),
  fault: $('fault'),
  faultToggle: $('fault-toggle'),
  faultState: $('fault-state'),
};

// The document.
let replica = new Text();
let shown = '';          // replica.content() as the textarea last showed it
let agent = null;        // {node, incarnation: BigInt}: the session new edits are typed under
let composing = false;   // an IME composition is open: the textarea is left alone
let held = null;         // remote deltas that arrived during a composition

// The connection.
let socket = null;
let live = false;        // the open socket has said hello
let seq = 0;             // of the last ops message sent (never reused)
const inFlight = new Map();  // seq -> delta sent on this socket, not yet acknowledged
let outbox = null;       // local edits not sent yet (one merged delta), or null
let backoff = BACKOFF_MIN_MS;
let retryAt = 0;
let retryTimer = null;
let holdUntil = 0;       // after a refusal: nothing is sent before this
let holdTimer = null;
let resendDelay = RETRY_MIN_MS;
let resending = false;   // the problem line shows a refusal being retried
let errorCount = 0;

// Fault injection (only when the node runs with --enable-fault-injection).
let others = [];         // the other regions' nodes: what "cut off" drops
let faultsOn = false;
let cut = false;

ui.doc.textContent = key;
document.title = `${key} · Meridian editor`;

// ---------------------------------------------------------------- status

function setStatus(kind, text) {
  ui.status.className = `status ${kind}`;
  ui.status.textContent = text;
}

function showProblem(text) {
  ui.problem.textContent = text;
  ui.problem.hidden = false;
  console.warn('meridian editor:', text);
}

function clearProblem() {
  ui.problem.hidden = true;
  ui.problem.textContent = '';
}

function pendingCount() {
  return inFlight.size + (outbox ? 1 : 0);
}

function refreshStatus() {
  if (live) {
    const n = pendingCount();
    const what = Date.now() < holdUntil ? 'waiting to resend' : `sending ${n}…`;
    setStatus('live', n ? `live · ${what}` : 'live · saved');
  } else if (retryTimer) {
    const s = Math.max(0, Math.ceil((retryAt - Date.now()) / 1000));
    const n = pendingCount() ? ' · unsent edits are kept' : '';
    setStatus('offline', `offline · reconnecting in ${s} s${n}`);
  } else {
    setStatus('connecting', 'connecting…');
  }
}

// ---------------------------------------------------------------- textarea

// The smallest change that turns `before` into `after`, as UTF-16 indices
// [start, endBefore) -> [start, endAfter). Where several are smallest, the
// changed part of `after` ends at the caret (typing "l" between "e" and "l"
// of "hel" inserts a new third character, not a fourth). A surrogate pair
// is never split.
function diff(before, after, caret) {
  const min = Math.min(before.length, after.length);
  let common = 0;  // the common suffix
  while (common < min &&
         before.charCodeAt(before.length - 1 - common) === after.charCodeAt(after.length - 1 - common)) {
    ++common;
  }
  const wanted = after.length - caret;
  let tail = wanted >= 0 && wanted <= common ? wanted : common;
  let start = 0;
  while (start < min - tail && before.charCodeAt(start) === after.charCodeAt(start)) ++start;
  const high = (c) => c >= 0xd800 && c <= 0xdbff;
  const low = (c) => c >= 0xdc00 && c <= 0xdfff;
  if (start > 0 && high(before.charCodeAt(start - 1))) --start;
  if (tail > 0 && low(after.charCodeAt(after.length - tail))) --tail;
  return [start, before.length - tail, after.length - tail];
}

// Turns what the user changed in the textarea into edits of the replica.
function takeLocalEdit() {
  const after = ui.editor.value;
  if (after === shown) return;
  if (!agent) {  // no session yet (the textarea is read-only until hello)
    ui.editor.value = shown;
    return;
  }
  const before = shown;
  const [start, endBefore, endAfter] = diff(before, after, ui.editor.selectionEnd);
  const at = utf16ToCodePoints(before, start);
  const deleted = utf16ToCodePoints(before, endBefore) - at;
  let delta = null;
  if (deleted > 0) delta = replica.delete(agent, at, deleted);
  if (endAfter > start) {
    const d = replica.insert(agent, at, after.slice(start, endAfter));
    if (delta) delta.merge(d);
    else delta = d;
  }
  shown = after;
  const content = replica.content();
  if (content !== after) {
    // Never expected: say so and show what the replica holds.
    showProblem('the editor lost track of an edit; showing the document as it is now');
    render(null);
  }
  if (delta) queue(delta);
}

function saveSelection() {
  const ta = ui.editor;
  return {
    start: replica.cursorAt(utf16ToCodePoints(shown, ta.selectionStart)),
    end: replica.cursorAt(utf16ToCodePoints(shown, ta.selectionEnd)),
    direction: ta.selectionDirection,
    scrollTop: ta.scrollTop,
  };
}

// Shows the replica; `selection` (from saveSelection before the replica
// changed) puts the caret and selection back on their characters.
function render(selection) {
  const ta = ui.editor;
  const value = replica.content();
  if (value !== ta.value) ta.value = value;
  shown = value;
  if (selection) {
    const start = codePointsToUtf16(value, replica.cursorPos(selection.start));
    const end = codePointsToUtf16(value, replica.cursorPos(selection.end));
    ta.setSelectionRange(start, Math.max(start, end), selection.direction);
    ta.scrollTop = selection.scrollTop;
  }
}

// Merges a delta (or whole state) from the node into the replica.
function applyRemote(delta) {
  if (composing) {
    if (held) held.merge(delta);
    else held = delta;
    return;
  }
  if (ui.editor.value !== shown) takeLocalEdit();
  const selection = saveSelection();
  replica.merge(delta);
  render(selection);
}

ui.editor.addEventListener('input', (event) => {
  if (composing || event.isComposing) return;
  takeLocalEdit();
});

ui.editor.addEventListener('compositionstart', () => {
  composing = true;
});

ui.editor.addEventListener('compositionend', () => {
  composing = false;
  takeLocalEdit();
  if (held) {
    const delta = held;
    held = null;
    applyRemote(delta);
  }
});

// ---------------------------------------------------------------- sending

function queue(delta) {
  if (outbox) outbox.merge(delta);
  else outbox = delta;
  flush();
}

function flush() {
  if (live && outbox && inFlight.size < MAX_IN_FLIGHT && Date.now() >= holdUntil) {
    const delta = outbox;
    outbox = null;
    sendOps(delta);
  }
  refreshStatus();
}

function sendOps(delta) {
  const n = ++seq;
  inFlight.set(n, delta);
  socket.send(JSON.stringify({ type: 'ops', seq: n, state: bytesToBase64url(delta.encode(zlib)) }));
}

const EMPTY = new Text().encode(zlib);

function isEmpty(text) {
  const bytes = text.encode(zlib);
  return bytes.length === EMPTY.length && bytes.every((b, i) => b === EMPTY[i]);
}

// ---------------------------------------------------------------- receiving

function onHello(msg) {
  const state = Text.decode(base64urlToBytes(msg.state), zlib);
  // Everything of ours the node lacks: unacknowledged and unsent edits,
  // and edits of earlier sessions (also those made offline).
  const missing = replica.deltaSince(state.version());
  inFlight.clear();
  outbox = null;
  holdUntil = 0;
  agent = { node: msg.agent.node, incarnation: BigInt(msg.agent.incarnation) };
  live = true;
  backoff = BACKOFF_MIN_MS;
  ui.region.textContent = msg.region;
  ui.node.textContent = msg.node;
  ui.editor.readOnly = false;
  ui.editor.placeholder = 'Type here…';
  applyRemote(state);
  if (!isEmpty(missing)) sendOps(missing);
  others = Array.isArray(msg.others) ? msg.others : [];
  faultsOn = msg.faults === true;
  showSessions(msg.sessions);
  setupFaults();
  resending = false;
  clearProblem();
  flush();
}

// A refused message: nothing of it was applied. Edits the node may take
// later go back to the outbox and are sent again after a pause; the others
// stay in the replica (and go with the next reconnect's resync).
function onRefusal(msg) {
  ++errorCount;
  const which = msg.seq == null ? '' : ` (message ${msg.seq})`;
  let text = `the node refused a message${which}: ${msg.code}: ${msg.message}`;
  const delta = msg.seq == null ? undefined : inFlight.get(msg.seq);
  if (delta) {
    inFlight.delete(msg.seq);
    if (PERMANENT.has(msg.code)) {
      text += ' (these edits stay here and are offered again after the next reconnect)';
    } else {
      if (outbox) outbox.merge(delta);
      else outbox = delta;
      holdUntil = Date.now() + resendDelay;
      clearTimeout(holdTimer);
      holdTimer = setTimeout(flush, resendDelay);
      text += ` (sending again in ${(resendDelay / 1000).toFixed(1)} s)`;
      resendDelay = Math.min(resendDelay * 2, RETRY_MAX_MS);
      resending = true;
    }
  }
  showProblem(text);
  flush();
}

function showSessions(sessions) {
  ui.sessions.replaceChildren();
  for (const s of Array.isArray(sessions) ? sessions : []) {
    const li = document.createElement('li');
    const me = agent && s.agent === agent.node;
    if (me) li.className = 'me';
    const tag = String(s.agent).split('~')[1] || String(s.agent);
    li.title = String(s.agent);
    li.append(me ? 'you ' : `${tag.slice(0, 6)} `);
    const where = document.createElement('span');
    where.className = 'where';
    where.textContent = `· ${s.region} · ${s.node}`;
    li.append(where);
    ui.sessions.append(li);
  }
}

function onMessage(event) {
  let msg;
  try {
    msg = JSON.parse(event.data);
  } catch (e) {
    ++errorCount;
    showProblem(`the node sent a frame that is not JSON: ${e.message}`);
    return;
  }
  try {
    switch (msg.type) {
      case 'hello':
        onHello(msg);
        break;
      case 'ops':
        if (!live) break;
        applyRemote(Text.decode(base64urlToBytes(msg.state), zlib));
        break;
      case 'ack':
        inFlight.delete(msg.seq);
        resendDelay = RETRY_MIN_MS;
        if (resending) {
          resending = false;
          clearProblem();
        }
        flush();
        break;
      case 'sessions':
        showSessions(msg.sessions);
        break;
      case 'error':
        onRefusal(msg);
        break;
      default:
        ++errorCount;
        showProblem(`the node sent an unknown message type '${msg.type}'`);
    }
  } catch (e) {
    ++errorCount;
    showProblem(`could not apply the node's '${msg.type}' message: ${e.message}`);
  }
}

// ---------------------------------------------------------------- connection

function connect() {
  retryTimer = null;
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const url = `${scheme}//${location.host}/v1/stream/text/${encodeURIComponent(key)}` +
              (token ? `?access_token=${encodeURIComponent(token)}` : '');
  refreshStatus();
  const ws = new WebSocket(url);
  socket = ws;
  ws.addEventListener('message', (event) => {
    if (ws === socket) onMessage(event);
  });
  ws.addEventListener('close', () => {
    if (ws !== socket) return;
    socket = null;
    live = false;
    inFlight.clear();  // resent after the next hello (deltaSince)
    const wait = backoff * (0.75 + Math.random() * 0.5);
    backoff = Math.min(backoff * 2, BACKOFF_MAX_MS);
    retryAt = Date.now() + wait;
    retryTimer = setTimeout(connect, wait);
    refreshStatus();
  });
}

// The countdown in the status line.
setInterval(() => {
  if (!live && retryTimer) refreshStatus();
}, 1000);

// ---------------------------------------------------------------- faults

function showCut(value) {
  cut = value;
  ui.faultToggle.textContent = cut ? 'Reconnect region' : 'Cut this region off';
  ui.faultToggle.classList.toggle('cut', cut);
  ui.faultState.classList.toggle('cut', cut);
  ui.faultState.textContent = cut
    ? 'cut off: no replication with other regions'
    : `replicating with ${others.length} other region${others.length === 1 ? '' : 's'}`;
}

function faultsFrom(body) {
  const drop = Array.isArray(body?.drop) ? body.drop : [];
  return others.length > 0 && others.every((id) => drop.includes(id));
}

async function setupFaults() {
  ui.fault.hidden = !faultsOn;
  if (!faultsOn) return;
  ui.faultToggle.disabled = others.length === 0;
  try {
    const res = await fetch('/v1/admin/faults', { cache: 'no-store', headers: authHeaders });
    if (!res.ok) throw new Error(`GET /v1/admin/faults answered ${res.status}`);
    showCut(faultsFrom(await res.json()));
  } catch (e) {
    showProblem(`cannot read the fault state: ${e.message}`);
  }
}

ui.faultToggle.addEventListener('click', async () => {
  const want = !cut;
  ui.faultToggle.disabled = true;
  try {
    const res = await fetch('/v1/admin/faults', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', ...authHeaders },
      body: JSON.stringify({ drop: want ? others : [] }),
    });
    const body = await res.json().catch(() => null);
    if (!res.ok) {
      throw new Error(`POST /v1/admin/faults answered ${res.status}` +
                      (body?.error ? `: ${body.error.message ?? body.error}` : ''));
    }
    showCut(faultsFrom(body));
  } catch (e) {
    ++errorCount;
    showProblem(`cannot change the fault state: ${e.message}`);
  } finally {
    ui.faultToggle.disabled = others.length === 0;
  }
});

// ---------------------------------------------------------------- test hook

window.meridianEditor = {
  text: () => replica.content(),
  agent: () => (agent ? { node: agent.node, incarnation: String(agent.incarnation) } : null),
  connected: () => live,
  pending: () => pendingCount(),  // ops messages not yet acknowledged (unsent edits count as one)
  cut: () => cut,
  errors: () => errorCount,      // refused messages and other problems, also ones since cured
  problem: () => (ui.problem.hidden ? '' : ui.problem.textContent),  // the problem shown now
};

connect();
