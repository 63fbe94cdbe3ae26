// The page under a soak, in Debian's headless Chromium, driven by playwright-core:
//   node tests/e2e/soak.mjs http://127.0.0.1:PORT/ SCREENSHOT_DIR [SEED]
// (`cargo xtask e2e` and `cargo xtask soak` serve www/ and run this). One long conversation that
// fills the context, Stop at random points, a model switch mid-reply, two tabs storing one model
// at once, a download cut off by closing its tab, a full storage quota — then the tab's memory
// against its memory after the first reply. Bounded: a fixed number of turns, a few minutes.
import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import {
  FLAGS,
  LONG,
  assert,
  chat,
  engineWorker,
  finish,
  folder,
  hubServer,
  isEngine,
  ready,
  test,
  useHub,
} from './lib.mjs';

const [base, shots, seedArg] = process.argv.slice(2);
mkdirSync(shots, { recursive: true });
const TURNS = 200;
const STOPS = 50;
// Where Stop is pressed: random, from a seed printed here (a failure reruns with it).
const seed = Number(seedArg ?? Date.now() % 2 ** 31);
console.log(`soak seed ${seed} (node tests/e2e/soak.mjs URL DIR ${seed} repeats this run)`);
let rng = seed >>> 0;
function random() {
  // mulberry32
  rng = (rng + 0x6d2b79f5) >>> 0;
  let t = rng;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
}

// --expose-gc: the memory figures are taken after a full collection of the page and the worker.
const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: [...FLAGS, '--enable-unsafe-webgpu', '--js-flags=--expose-gc', '--enable-precise-memory-info'],
});
const context = await browser.newContext({ viewport: { width: 1200, height: 900 } });
const page = await context.newPage();
const errors = [];
page.on('pageerror', (e) => errors.push(String(e)));

async function setNumber(p, id, value) {
  await p.evaluate(
    ([id, v]) => {
      document.getElementById(id).value = String(v);
    },
    [id, value],
  );
}

// What the tab holds, after a garbage collection of the page and the engine's worker: the page's
// JavaScript heap, the engine's live heap (src/web_heap.rs) and its wasm memory, which holds that
// heap and only grows (the page gives a fresh worker to each model: www/protocol.js). The tab:
// the page's heap and the wasm memory. The page's collection is DevTools' (CDP
// `HeapProfiler.collectGarbage`): a `gc()` called from inside an evaluation left up to 2 MB of
// garbage on a 2.5 MB heap, which read as growth.
async function memory(p) {
  const worker = await engineWorker(p);
  const cdp = await p.context().newCDPSession(p);
  await cdp.send('HeapProfiler.collectGarbage');
  await cdp.detach();
  await worker.evaluate(() => globalThis.gc());
  const pageHeap = await p.evaluate(() => performance.memory.usedJSHeapSize);
  const engineHeap = await worker.evaluate(() => self.engineHeap());
  const wasm = await worker.evaluate(() => self.wasmMemory.buffer.byteLength);
  // Engine workers, not the pool workers of the build with threads.
  const workers = (await Promise.all(p.workers().map(isEngine))).filter(Boolean).length;
  return { pageHeap, engineHeap, wasm, tab: pageHeap + wasm, workers };
}
const mb = (n) => `${(n / 1e6).toFixed(2)} MB`;
// The main tab's memory at the end of a test: where it grows, if it does.
async function trail() {
  const m = await memory(page);
  console.log(`     memory now: page heap ${mb(m.pageHeap)}, engine heap ${mb(m.engineHeap)}, wasm ${mb(m.wasm)}`);
}

// Sends a message and presses Stop once the reply has streamed `after` characters (or at once
// with 0); returns how the reply finished.
async function sendAndStop(p, text, after) {
  const before = await p.locator('#messages li.assistant').count();
  await p.fill('#prompt', text);
  await p.press('#prompt', 'Enter');
  await p.waitForFunction(
    ([i, n]) => {
      const li = document.querySelectorAll('#messages li.assistant')[i];
      return li && (li.textContent.length >= n || li.dataset.finish);
    },
    [before, after],
    { timeout: LONG },
  );
  // A click in the page: a no-op if the reply ended in the meantime (the button is disabled).
  await p.evaluate(() => document.getElementById('stop').click());
  await p.waitForFunction((i) => document.querySelectorAll('#messages li.assistant')[i]?.dataset.finish, before, {
    timeout: LONG,
  });
  return p.locator('#messages li.assistant').nth(before).getAttribute('data-finish');
}

// Checks a hub model's fit, then presses Load; `ready` waits for the engine's answer.
async function loadById(p, id) {
  await checkById(p, id);
  await p.click('#hub-load');
}

async function checkById(p, id) {
  await p.click('button[data-tab="models"]');
  await p.evaluate(() => {
    delete document.getElementById('hub-info').dataset.fits;
  });
  await p.fill('#hub-id', id);
  await p.click('#hub-form button[type="submit"]');
  await p.waitForFunction(() => document.getElementById('hub-info').dataset.fits, null, { timeout: LONG });
  assert((await p.getAttribute('#hub-info', 'data-fits')) === 'yes', await p.textContent('#hub-info'));
  await p.evaluate(() => {
    document.body.dataset.ready = 'false';
  });
}

// What the model cache holds for a URL: its byte length, or 0 when nothing is stored.
async function storedBytes(p, url) {
  return p.evaluate(async (u) => {
    const r = await (await caches.open('wgpt-models')).match(u);
    return r ? (await r.arrayBuffer()).byteLength : 0;
  }, url);
}

const chatFiles = folder(new URL('../fixtures/llama/chat-llama/', import.meta.url).pathname);
const ids = ['two-tabs', 'cut', 'quota'].map((n) => `soak/${n}`);
const hub = await hubServer(Object.fromEntries(ids.map((id) => [id, chatFiles])));
const hubBase = `http://127.0.0.1:${hub.server.address().port}`;
const fileUrl = (id, f) => `${hubBase}/${id}/resolve/main/${f}`;
const SHARDS = Object.keys(chatFiles).filter((f) => f.endsWith('.safetensors'));
let first;

await test(`${TURNS} turns in one conversation: the context fills, old turns are left out`, async () => {
  await page.goto(base);
  await ready(page);
  await page.click('button[data-tab="chat"]');
  await setNumber(page, 'max-tokens', 24);
  const r = await chat(page, 'Hello! Who are you?');
  assert(r.text.length > 0, 'no first reply');
  first = await memory(page);
  console.log(
    `     after the first reply: page heap ${mb(first.pageHeap)}, engine heap ${mb(first.engineHeap)}, wasm memory ${mb(first.wasm)}`,
  );
  let dropped = 0;
  const finishes = {};
  for (let turn = 1; turn < TURNS; turn++) {
    const { finish } = await chat(page, `Turn ${turn}: what is GPT? ${'tell me more. '.repeat(turn % 4)}`);
    finishes[finish] = (finishes[finish] ?? 0) + 1;
    dropped = Math.max(
      dropped,
      Number((await page.textContent('#status')).match(/(\d+) old turns left out/)?.[1] ?? 0),
    );
  }
  const replies = await page.locator('#messages li.assistant').count();
  console.log(`     ${replies} replies (${JSON.stringify(finishes)}); up to ${dropped} old turns left out to fit`);
  assert(replies === TURNS, `${replies} replies for ${TURNS} messages`);
  assert(dropped > 0, 'the context never filled: no turn was left out');
  await trail();
});

await test(`Stop at random points of ${STOPS} replies: each ends, the next one starts`, async () => {
  await setNumber(page, 'max-tokens', 96);
  const finishes = {};
  for (let i = 0; i < STOPS; i++) {
    const finish = await sendAndStop(page, `Question ${i}: when did GPT-3 come out?`, Math.floor(random() * 16));
    assert(['cancelled', 'max_tokens', 'stop_token', 'context_full'].includes(finish), `reply ${i} ended as ${finish}`);
    finishes[finish] = (finishes[finish] ?? 0) + 1;
  }
  console.log(`     ${JSON.stringify(finishes)}`);
  // The tiny model often ends a reply within a few tokens: Stop must still have ended many.
  assert((finishes.cancelled ?? 0) >= STOPS / 4, `Stop ended only ${finishes.cancelled ?? 0} of ${STOPS} replies`);
  const after = await chat(page, 'Are you still there?');
  assert(after.text.length > 0, 'no reply after the stops');
  await trail();
});

// Starts a reply, then loads catalogue entry `index` while it streams; returns how the reply
// ended once the new model is ready.
async function switchMidReply(index) {
  await page.click('button[data-tab="chat"]');
  const before = await page.locator('#messages li.assistant').count();
  await page.fill('#prompt', 'Tell me a long story about the Transformer.');
  await page.press('#prompt', 'Enter');
  await page.waitForFunction(
    (i) => document.querySelectorAll('#messages li.assistant')[i]?.textContent.length > 0,
    before,
    { timeout: LONG },
  );
  await loadCatalogue(index);
  return page.locator('#messages li.assistant').nth(before).getAttribute('data-finish');
}

async function loadCatalogue(index) {
  await page.evaluate(() => {
    document.body.dataset.ready = 'false';
  });
  await page.click('button[data-tab="models"]');
  await page.click(`#model-list li:nth-child(${index + 1}) button`);
  await ready(page);
}

await test('a model switch in the middle of a reply: the reply ends, the new model answers', async () => {
  await page.click('button[data-tab="models"]');
  const models = await page.locator('#model-list button').allTextContents();
  for (const [name, index] of [
    ['base', 1],
    ['chat', 0],
  ]) {
    const finish = await switchMidReply(index);
    assert(finish && finish !== 'error', `the interrupted reply ended as ${finish}`);
    const status = await page.textContent('#status');
    assert(status.startsWith(`ready: ${models[index].replace(/^Load /, '')}`), `${name}: ${status}`);
    await page.click('button[data-tab="chat"]');
    const r = await chat(page, 'Hello?');
    assert(r.text.length > 0, `no reply from the ${name} model`);
  }
  await trail();
});

await test('two tabs store the same model at once: both load it, the store holds it once, whole', async () => {
  const other = await context.newPage();
  await other.goto(base);
  await ready(other);
  for (const p of [page, other]) await useHub(p, hubBase);
  // Both checked, then Load pressed in both at once; slow enough that the downloads overlap.
  const id = 'soak/two-tabs';
  for (const p of [page, other]) await checkById(p, id);
  for (const f of SHARDS) hub.pace[f] = 100;
  await Promise.all([page.click('#hub-load'), other.click('#hub-load')]);
  await Promise.all([ready(page), ready(other)]);
  for (const f of SHARDS) delete hub.pace[f];
  // Chromium runs a cache's operations in order: the second tab's lookup waits for the first
  // tab's store to finish, then finds the file there — or, earlier, downloads it too.
  const gets = hub.log.filter((l) => l.startsWith(`GET /cdn/${id}/`) && !l.includes('bytes='));
  console.log(`     ${gets.length} downloads of the ${SHARDS.length} shards for the two tabs`);
  assert(gets.length >= SHARDS.length && gets.length <= 2 * SHARDS.length, gets.join(', '));
  for (const f of Object.keys(chatFiles)) {
    const n = await storedBytes(page, fileUrl(id, f));
    assert(n === chatFiles[f].length, `${f}: ${n} of ${chatFiles[f].length} bytes stored`);
  }
  for (const p of [page, other]) {
    await p.click('button[data-tab="chat"]');
    await p.click('#new-chat');
    const r = await chat(p, 'Hi');
    assert(r.text.length > 0, 'no reply from the model both tabs stored');
  }
  await other.close();
  await trail();
});

await test('a download cut off by closing its tab: nothing partial is kept, the next visit downloads again', async () => {
  const id = 'soak/cut';
  const shard = SHARDS[1];
  const doomed = await context.newPage();
  await doomed.goto(base);
  await ready(doomed);
  await useHub(doomed, hubBase);
  hub.pace[shard] = 300; // 16 KiB per 300 ms: the tab closes a few chunks in
  await loadById(doomed, id);
  // Its progress names the shard once a first chunk of it has arrived.
  await doomed.waitForFunction((s) => document.getElementById('status').textContent.includes(s), shard, {
    timeout: LONG,
  });
  await doomed.close();
  delete hub.pace[shard];
  assert((await storedBytes(page, fileUrl(id, shard))) === 0, 'a partial download was stored');
  const before = hub.log.length;
  await loadById(page, id);
  await ready(page);
  const again = hub.log.slice(before).filter((l) => l.startsWith(`GET /cdn/${id}/${shard}`));
  assert(again.length === 1 && !/bytes=/.test(again[0]), `the next visit fetched: ${again}`);
  assert((await storedBytes(page, fileUrl(id, shard))) === chatFiles[shard].length, 'not stored whole the second time');
  await trail();
});

await test('a full storage quota: the model runs, the page says so and offers to delete stored models', async () => {
  const cdp = await context.newCDPSession(page);
  const origin = new URL(base).origin;
  const { usage } = await page.evaluate(() => navigator.storage.estimate());
  await cdp.send('Storage.overrideQuotaForOrigin', { origin, quotaSize: usage + 4096 });
  const id = 'soak/quota';
  await loadById(page, id);
  await ready(page);
  assert(await page.isVisible('#storage-full'), 'no word of the files that were not stored');
  const warning = await page.textContent('#storage-full');
  assert(/model-0000[12]-of-00002\.safetensors: this browser's storage for the page is full/.test(warning), warning);
  await page.screenshot({ path: `${shots}/soak-quota.png` });
  for (const f of SHARDS) assert((await storedBytes(page, fileUrl(id, f))) === 0, `${f} stored past the quota`);
  await page.click('button[data-tab="chat"]');
  await page.click('#new-chat');
  const r = await chat(page, 'Hi');
  assert(r.text.length > 0, 'no reply from the model that was not stored');
  // The offer: the stored models, each with Delete, and Delete all.
  await page.click('#free-storage');
  assert(await page.isVisible('#models'), 'the Models tab did not open');
  await page.waitForFunction(() => document.querySelectorAll('#stored li').length > 0, null, { timeout: LONG });
  await page.click('#delete-stored');
  await page.waitForFunction(() => document.getElementById('stored').textContent === 'nothing stored yet');
  assert(await page.isHidden('#storage-full'), 'the warning stayed after deleting');
  await cdp.send('Storage.overrideQuotaForOrigin', { origin });
  await loadById(page, id);
  await ready(page);
  assert(await page.isHidden('#storage-full'), 'a warning with room to store');
  for (const f of SHARDS) assert((await storedBytes(page, fileUrl(id, f))) === chatFiles[f].length, `${f} not stored`);
  await trail();
});

// A round of what the soak did, on the main tab: 30 turns, 10 replies stopped, a switch to the
// base model and back mid-reply, the model by id again (from the store), and a new conversation
// on the first model with one reply, as at the start.
async function round() {
  await loadCatalogue(0);
  await page.click('button[data-tab="chat"]');
  await page.click('#new-chat');
  await setNumber(page, 'max-tokens', 24);
  for (let turn = 0; turn < 30; turn++) await chat(page, `Turn ${turn}: what is GPT?`);
  await setNumber(page, 'max-tokens', 96);
  for (let i = 0; i < 10; i++) await sendAndStop(page, 'When did GPT-2 come out?', Math.floor(random() * 16));
  await switchMidReply(1);
  await switchMidReply(0);
  await loadById(page, 'soak/quota');
  await ready(page);
  await loadCatalogue(0);
  await page.click('button[data-tab="chat"]');
  await page.click('#new-chat');
  await setNumber(page, 'max-tokens', 24);
  await chat(page, 'Hello! Who are you?');
}

await test("the tab's memory after the soak within 10 % of the first reply's; the engine's heap too, the page's steady over a round", async () => {
  // The page's JavaScript heap also holds V8's code and type feedback for every path the soak
  // first ran, and Chromium's performance timeline (layout shifts, event timings: at most 150
  // of each) — a one-time 0.3–0.4 MB here (a heap snapshot's diff) — so it is also compared round
  // to round: the same work twice, nothing kept from the first.
  await round();
  const a = await memory(page);
  await round();
  const b = await memory(page);
  const pct = (x, y) => `${x >= y ? '+' : ''}${((x / y - 1) * 100).toFixed(1)} %`;
  const line = (m) =>
    `page heap ${mb(m.pageHeap)}, engine heap ${mb(m.engineHeap)}, wasm ${mb(m.wasm)}, tab ${mb(m.tab)}`;
  console.log(`     first reply: ${line(first)}`);
  console.log(`     after the soak and a round: ${line(a)}`);
  console.log(
    `     after a second round: ${line(b)} — tab ${pct(b.tab, first.tab)}, engine heap ${pct(b.engineHeap, first.engineHeap)}, wasm ${pct(b.wasm, first.wasm)} on the first reply; page heap ${pct(b.pageHeap, a.pageHeap)} on the round before; ${b.workers} engine worker(s)`,
  );
  // The tab: the models loaded in the soak (a bigger one by id among them) gave their memory back.
  assert(b.tab <= first.tab * 1.1, `the tab grew from ${first.tab} to ${b.tab} bytes`);
  assert(b.wasm <= first.wasm * 1.1, `the wasm memory grew from ${first.wasm} to ${b.wasm} bytes`);
  assert(b.workers === 1, `${b.workers} engine workers after the soak`);
  // The model, its KV cache and the engine's buffers: nothing kept from the soak.
  assert(b.engineHeap <= first.engineHeap * 1.1, `the engine heap grew from ${first.engineHeap} to ${b.engineHeap}`);
  // The page: no conversation, reply or download kept from a round.
  assert(b.pageHeap <= a.pageHeap * 1.1, `the page heap grew from ${a.pageHeap} to ${b.pageHeap} in a round`);
});

await test('no script errors on the page', async () => {
  assert(!errors.length, errors.join('\n'));
});

await browser.close();
hub.server.close();
finish('soak');
