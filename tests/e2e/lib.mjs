// What the page tests share (page.mjs, soak.mjs): the runner, waiting for the page, sending a
// chat message, and a server in the Hugging Face hub's URL layout.
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { createServer } from 'node:http';

export const FLAGS = [
  '--no-sandbox',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
export const LONG = 180_000;
let passed = 0,
  failed = 0;

/// Runs one named test; a failure is printed and counted, and the next test runs.
export async function test(name, fn) {
  const t = Date.now();
  try {
    await fn();
    passed++;
    console.log(`ok   ${name} (${((Date.now() - t) / 1000).toFixed(1)} s)`);
  } catch (e) {
    failed++;
    console.log(`FAIL ${name}: ${e.stack || e}`);
  }
}

/// Prints the count and exits non-zero if any test failed.
export function finish(what) {
  console.log(`${what}: ${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}

export function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}

export async function ready(page, backend) {
  await page.waitForSelector(`body[data-ready="true"]${backend ? `[data-backend="${backend}"]` : ''}`, {
    timeout: LONG,
  });
}

/// Whether a worker of the page is an engine's (worker.js): the engine's pool workers (the build
/// with threads) are listed too, and never answer — idle, each waits on a lock in shared memory.
export function isEngine(worker) {
  const no = new Promise((r) => setTimeout(() => r(false), 500));
  return Promise.race([worker.evaluate(() => typeof self.engineHeap === 'function').catch(() => false), no]);
}

/// The engine's worker: the page's newest that answers as one. The page starts one per model and
/// ends the one before (www/protocol.js `EngineClient`), which may still be listed for a moment.
export async function engineWorker(page) {
  for (const w of [...page.workers()].reverse()) if (await isEngine(w)) return w;
  throw new Error(`none of the page's ${page.workers().length} workers answers as the engine`);
}

export async function chat(page, text) {
  const before = await page.locator('#messages li.assistant').count();
  await page.fill('#prompt', text);
  await page.press('#prompt', 'Enter');
  const reply = page.locator('#messages li.assistant').nth(before);
  await reply.waitFor();
  await page.waitForFunction((i) => document.querySelectorAll('#messages li.assistant')[i]?.dataset.finish, before, {
    timeout: LONG,
  });
  const finish = await reply.getAttribute('data-finish');
  assert(finish !== 'error', await reply.textContent());
  return { text: await reply.textContent(), finish };
}

// A new conversation, one message answered greedily (temperature 0), the setting put back.
export async function greedyChat(page, text) {
  await page.click('button[data-tab="chat"]');
  const temperature = await page.inputValue('#temperature');
  await page.evaluate(() => {
    document.getElementById('temperature').value = '0';
  });
  await page.click('#new-chat');
  const r = await chat(page, text);
  await page.evaluate((t) => {
    document.getElementById('temperature').value = t;
  }, temperature);
  return r;
}

// www/ as a static host serves it that sends no headers of its own (no COOP/COEP: the page is not
// cross-origin isolated unless its service worker makes it so). Returns { server, url }.
export async function plainServer() {
  const www = new URL('../../www/', import.meta.url).pathname;
  const types = { html: 'text/html', js: 'text/javascript', css: 'text/css', json: 'application/json' };
  const server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url, 'http://x').pathname);
    const file = www + (path.endsWith('/') ? `${path}index.html` : path).slice(1);
    if (path.includes('..') || !existsSync(file) || !statSync(file).isFile())
      return res.writeHead(404, { 'Content-Length': 9 }).end('not found');
    const body = readFileSync(file);
    const ext = file.split('.').pop();
    res.writeHead(200, {
      'Content-Type': types[ext] ?? (ext === 'wasm' ? 'application/wasm' : 'application/octet-stream'),
      'Content-Length': body.length,
    });
    res.end(body);
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return { server, url: `http://127.0.0.1:${server.address().port}/` };
}

// A server in the Hugging Face hub's URL layout, as the hub answers: small files with CORS and an
// ETag; weights with a 302 to a file store carrying X-Linked-Size and X-Linked-Etag (SHA-256),
// served there with ranges. Models: { 'org/name': { file: bytes } }. Faults: `cut[file]` (cut
// the next response after N bytes), `error500[file]`, `wrongSha[file]` (announce another file's
// SHA-256), `pace[file]` (send it 16 KiB at a time, this many ms apart); `log` has every request.
export function hubServer(models) {
  const hub = { log: [], cut: {}, error500: {}, wrongSha: {}, pace: {} };
  const cors = {
    'Access-Control-Allow-Origin': '*',
    'Access-Control-Expose-Headers': 'Content-Length, Content-Range, ETag, X-Linked-Size, X-Linked-Etag, Accept-Ranges',
    'Access-Control-Allow-Headers': 'Range',
  };
  hub.server = createServer((req, res) => {
    const range = req.headers.range ?? '';
    hub.log.push(`${req.method} ${req.url} ${range}`);
    if (req.method === 'OPTIONS')
      return res.writeHead(204, { ...cors, 'Access-Control-Allow-Methods': 'GET, HEAD' }).end();
    const m = req.url.match(/^\/(cdn\/)?([^/]+\/[^/]+)\/(?:resolve\/main\/)?(.+)$/);
    const files = m && models[m[2]];
    const bytes = files?.[m?.[3]];
    if (!bytes) return res.writeHead(404, { ...cors, 'Content-Length': 9 }).end('not found');
    const [cdn, id, file] = [!!m[1], m[2], m[3]];
    if (hub.error500[file] && req.method === 'GET')
      return res.writeHead(500, { ...cors, 'Content-Length': 5 }).end('oops!');
    const sha = hub.wrongSha[file] ? '0'.repeat(64) : createHash('sha256').update(bytes).digest('hex');
    if ((file.endsWith('.safetensors') || file.endsWith('.gguf')) && !cdn)
      return res
        .writeHead(302, {
          ...cors,
          Location: `/cdn/${id}/${file}`,
          'X-Linked-Size': bytes.length,
          'X-Linked-Etag': `"${sha}"`,
          'Content-Length': 0,
        })
        .end();
    const from = Number(range.match(/^bytes=(\d+)-/)?.[1] ?? 0);
    const to = Math.min(bytes.length - 1, Number(range.match(/^bytes=\d+-(\d+)$/)?.[1] ?? bytes.length - 1));
    const body = bytes.subarray(from, to + 1);
    const headers = { ...cors, 'Content-Length': body.length, 'Accept-Ranges': 'bytes', ETag: `"${sha}"` };
    if (range) headers['Content-Range'] = `bytes ${from}-${to}/${bytes.length}`;
    res.writeHead(range ? 206 : 200, headers);
    if (req.method === 'HEAD') return res.end();
    const cut = hub.cut[file];
    if (cut !== undefined && req.method === 'GET') {
      delete hub.cut[file];
      res.write(body.subarray(0, cut));
      return setTimeout(() => res.socket.destroy(), 50);
    }
    const pace = hub.pace[file];
    if (pace && req.method === 'GET') {
      let at = 0;
      const next = () => {
        if (res.destroyed) return;
        if (at >= body.length) return res.end();
        res.write(body.subarray(at, at + 16384));
        at += 16384;
        setTimeout(next, pace);
      };
      return next();
    }
    res.end(body);
  });
  return new Promise((resolve) => hub.server.listen(0, '127.0.0.1', () => resolve(hub)));
}

export function folder(dir) {
  return Object.fromEntries(readdirSync(dir).map((f) => [f, readFileSync(dir + f)]));
}

/// Points the page at a hub (the Models tab's base URL). A new base reloads the page (its
/// connect-src names the hub): this waits for the reloaded page to be ready.
export async function useHub(p, hubBase) {
  await p.click('button[data-tab="models"]');
  if ((await p.inputValue('#hub-base')) !== hubBase) {
    const reloaded = p.waitForEvent('load', { timeout: LONG });
    await p.evaluate((b) => {
      const input = document.getElementById('hub-base');
      input.value = b;
      input.dispatchEvent(new Event('change'));
    }, hubBase);
    await reloaded;
    await ready(p);
  }
  await p.click('button[data-tab="models"]');
}
