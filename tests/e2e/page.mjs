// End-to-end tests of the page in Debian's headless Chromium, driven by playwright-core:
//   node tests/e2e/page.mjs http://127.0.0.1:PORT/ SCREENSHOT_DIR
// (`cargo xtask test` serves www/ and runs this). Prints one line per test and exits non-zero on
// any failure. Screenshots are kept in SCREENSHOT_DIR.
import { chromium } from 'playwright-core';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import {
  FLAGS,
  LONG,
  assert,
  chat,
  engineWorker,
  finish,
  folder,
  greedyChat,
  hubServer,
  plainServer,
  ready,
  test,
  useHub,
} from './lib.mjs';

const [base, shots] = process.argv.slice(2);
mkdirSync(shots, { recursive: true });
const state = {};

async function nextTokens(page, text) {
  await page.click('button[data-tab="next"]');
  await page.fill('#next-text', text);
  await page.evaluate(() => document.getElementById('bars').replaceChildren());
  await page.click('#next-form button[type="submit"]');
  await page.waitForFunction(() => document.querySelectorAll('#bars li').length === 10, null, { timeout: LONG });
  return page.$$eval('#bars li', (lis) =>
    lis.map((li) => ({ token: li.querySelector('.tok').textContent, p: parseFloat(li.lastChild.textContent) })),
  );
}

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: [...FLAGS, '--enable-unsafe-webgpu'],
});
const context = await browser.newContext({ viewport: { width: 1200, height: 900 } });
const page = await context.newPage();
const consoleErrors = [];
page.on('console', (m) => {
  if (m.type() === 'error') consoleErrors.push(m.text());
});
page.on('pageerror', (e) => consoleErrors.push(String(e)));

await test('the page loads the default model', async () => {
  await page.goto(base);
  await ready(page);
  const status = await page.textContent('#status');
  assert(status.startsWith('ready'), status);
  await page.screenshot({ path: `${shots}/loaded.png` });
});

await test('chat: a message gets a streamed reply', async () => {
  // Watch the reply grow while it streams.
  const sizes = page
    .evaluate(
      () =>
        new Promise((resolve) => {
          const seen = new Set();
          const obs = new MutationObserver(() => {
            const li = [...document.querySelectorAll('#messages li.assistant')].pop();
            if (li) seen.add(li.textContent.length);
            if (li?.dataset.finish) {
              obs.disconnect();
              resolve([...seen]);
            }
          });
          obs.observe(document.getElementById('messages'), {
            subtree: true,
            childList: true,
            characterData: true,
            attributes: true,
          });
        }),
    )
    .catch((e) => [String(e)]);
  const r = await chat(page, 'Hello! Who are you?');
  assert(r.text.length > 0, 'empty reply');
  assert(['max_tokens', 'stop_token', 'context_full'].includes(r.finish), r.finish);
  const lengths = await sizes;
  assert(lengths.filter((n) => n > 0).length >= 2, `the reply did not stream: ${lengths}`);
  await page.screenshot({ path: `${shots}/chat.png` });
});

await test('chat: markup in a message stays text', async () => {
  const evil = '<img src=x onerror="window.__xss=1">';
  await chat(page, evil);
  const users = await page.$$eval('#messages li.user', (lis) => lis.map((li) => li.textContent));
  assert(users.includes(evil), 'the message was not shown as typed');
  assert((await page.locator('#messages img').count()) === 0, 'an <img> was created');
  assert(await page.evaluate(() => window.__xss === undefined), 'script ran');
});

await test('chat model: a conversation in Chinese and one in English (greedy)', async () => {
  await page.click('button[data-tab="chat"]');
  const setTemperature = (t) =>
    page.evaluate((v) => {
      document.getElementById('temperature').value = v;
    }, t);
  const temperature = await page.inputValue('#temperature');
  await setTemperature('0');
  const cjk = /[\u4e00-\u9fff]/;
  await page.click('#new-chat');
  const zh1 = await chat(page, '你好');
  const zh2 = await chat(page, 'GPT的全称是什么？');
  console.log(`     zh: ${JSON.stringify(zh1.text)} / ${JSON.stringify(zh2.text)}`);
  assert(zh1.finish === 'stop_token' && cjk.test(zh1.text), `zh greeting: ${zh1.finish} ${zh1.text}`);
  assert(zh2.text.includes('Generative Pre-trained Transformer'), `zh question: ${zh2.text}`);
  await page.screenshot({ path: `${shots}/chat-zh.png` });
  await page.click('#new-chat');
  const en1 = await chat(page, 'Hello');
  const en2 = await chat(page, 'What is the full name of GPT?');
  console.log(`     en: ${JSON.stringify(en1.text)} / ${JSON.stringify(en2.text)}`);
  assert(
    en1.finish === 'stop_token' && !cjk.test(en1.text) && /[a-z]/.test(en1.text),
    `en greeting: ${en1.finish} ${en1.text}`,
  );
  assert(en2.text.startsWith('Generative Pre-trained Transformer'), `en question: ${en2.text}`);
  await page.screenshot({ path: `${shots}/chat-en.png` });
  await setTemperature(temperature);
});

let cpuTokens;
await test('next token: bars for 你好, click one to extend', async () => {
  const rows = await nextTokens(page, '你好');
  const total = rows.reduce((a, r) => a + r.p, 0);
  assert(total > 0 && total <= 100.5, `probabilities sum to ${total} %`);
  assert(
    rows.every((r, i) => i === 0 || rows[i - 1].p >= r.p),
    'bars are not sorted',
  );
  cpuTokens = rows.map((r) => r.token);
  await page.screenshot({ path: `${shots}/next-token.png` });
  await page.click('#bars li:not(.partial) >> nth=0');
  await page.waitForFunction(() => document.getElementById('next-text').value.length > 2);
  await page.waitForFunction(() => document.querySelectorAll('#bars li').length === 10, null, { timeout: LONG });
});

await test('attention: a heatmap for "You are a good man"', async () => {
  await page.click('button[data-tab="attention"]');
  await page.fill('#attention-text', 'You are a good man');
  await page.click('#attention-form button[type="submit"]');
  await page.waitForSelector('#heatmap table', { timeout: LONG });
  const n = await page.$$eval('#heatmap tr', (rows) => rows.length - 1);
  assert(n >= 5, `${n} tokens`);
  // Each row of attention weights sums to 1 over the visible (past) cells.
  const sums = await page.$$eval('#heatmap tr', (rows) =>
    rows.slice(1).map((r) => [...r.querySelectorAll('td')].reduce((a, td) => a + (parseFloat(td.textContent) || 0), 0)),
  );
  assert(
    sums.every((s) => Math.abs(s - 1) < 0.05),
    `row sums ${sums}`,
  );
  await page.selectOption('#layer', { index: 1 });
  await page.screenshot({ path: `${shots}/attention.png` });
});

// Episodes the trainer builds natively (tests/tasks.rs checks this file against the Rust).
const EPISODES = JSON.parse(readFileSync(new URL('../fixtures/episodes.json', import.meta.url), 'utf8'));

await test('few-shot: the page builds the same prompts as the trainer', async () => {
  await page.click('button[data-tab="fewshot"]');
  await page.waitForFunction(() => document.querySelectorAll('#task option').length === 10, null, { timeout: LONG });
  for (const e of EPISODES) {
    await page.selectOption('#task', e.task);
    await page.selectOption('#shots', String(e.k));
    await page.setChecked('#with-desc', e.description);
    await page.fill('#episode', String(e.seed));
    await page.dispatchEvent('#episode', 'change');
    await page
      .waitForFunction((want) => document.getElementById('fewshot-prompt').value === want, e.prompt, {
        timeout: 10_000,
      })
      .catch(async () => {
        throw new Error(`${e.task} k=${e.k}: page built ${JSON.stringify(await page.inputValue('#fewshot-prompt'))}`);
      });
    const expected = await page.textContent('#fewshot-expected');
    assert(expected === e.answer, `${e.task}: expected ${expected} vs ${e.answer}`);
  }
});

await test('few-shot: complete one episode, then compare 0 to 8 examples', async () => {
  // The demo is meant for the base model: the page offers it when the chat model is loaded.
  if (await page.isVisible('#use-base')) {
    await page.evaluate(() => {
      document.body.dataset.ready = 'false';
    });
    await page.click('#use-base');
    await ready(page);
    assert(await page.isHidden('#fewshot-model'), 'the base-model hint stays after loading the base model');
  }
  await page.selectOption('#task', 'copy');
  await page.selectOption('#shots', '4');
  await page.click('#fewshot-run');
  await page.waitForFunction(() => /right|wrong/.test(document.getElementById('fewshot-output').className), null, {
    timeout: LONG,
  });
  await page.click('#fewshot-sweep');
  await page.waitForSelector('#fewshot-table[data-done="true"]', { timeout: LONG });
  const rows = await page.$$eval('#fewshot-table tr', (trs) => trs.slice(1).map((tr) => tr.cells[1].textContent));
  assert(rows.length === 5 && rows.every((r) => / \/ 10$/.test(r)), `sweep rows ${rows}`);
  await page.screenshot({ path: `${shots}/few-shot.png` });
});

await test('chat: Esc stops a reply', async () => {
  await page.click('button[data-tab="chat"]');
  await page.evaluate(() => {
    document.getElementById('max-tokens').value = '1000';
  });
  await page.fill('#prompt', 'Tell me a long story.');
  // Enter and Esc in one task of the page, so the worker's queue holds the stop right behind
  // the chat and takes it before its second step of 4 tokens. (Two separate key presses race:
  // on a loaded machine a 128-token model fills its context before the Esc lands.)
  await page.evaluate(() => {
    const key = (k) => new KeyboardEvent('keydown', { key: k, bubbles: true, cancelable: true });
    document.getElementById('prompt').dispatchEvent(key('Enter'));
    document.dispatchEvent(key('Escape'));
  });
  await page.waitForFunction(
    () => [...document.querySelectorAll('#messages li.assistant')].pop()?.dataset.finish,
    null,
    { timeout: LONG },
  );
  const finish = await page.locator('#messages li.assistant').last().getAttribute('data-finish');
  assert(finish === 'cancelled', finish);
  await page.evaluate(() => {
    document.getElementById('max-tokens').value = '32';
  });
});

await test('the WebGPU engine gives the same next tokens', async () => {
  // The model loaded now (the few-shot test may have switched to the base model), on the CPU.
  cpuTokens = (await nextTokens(page, '你好')).map((r) => r.token);
  await page.click('button[data-tab="models"]');
  await page.evaluate(() => {
    document.body.dataset.ready = 'false';
  });
  await page.selectOption('#backend', 'gpu');
  await ready(page, 'gpu');
  const rows = await nextTokens(page, '你好');
  assert(
    JSON.stringify(rows.slice(0, 5).map((r) => r.token)) === JSON.stringify(cpuTokens.slice(0, 5)),
    `gpu ${rows.map((r) => r.token)} vs cpu ${cpuTokens}`,
  );
  await page.click('button[data-tab="models"]');
  await page.screenshot({ path: `${shots}/models.png` });
});

await test("a bundle from disk: the engine's own verdict before loading, a broken one refused", async () => {
  // The engine reads config.json and the safetensors header (not the weights) and answers with
  // its plan against this adapter (SwiftShader here: a software fallback).
  await page.click('button[data-tab="models"]');
  const dir = new URL('../../www/models/chat/', import.meta.url).pathname;
  const files = ['config.json', 'model.safetensors', 'tokenizer.json'].map((f) => dir + f);
  await page.setInputFiles('#files', files);
  await page.waitForFunction(() => document.getElementById('file-info').dataset.webgpu, null, { timeout: LONG });
  const info = await page.$$eval('#file-info dt', (dts) =>
    Object.fromEntries(dts.map((dt) => [dt.textContent, dt.nextElementSibling.textContent])),
  );
  const config = JSON.parse(readFileSync(`${dir}config.json`, 'utf8'));
  const c = config.n_embd,
    f = config.n_inner ?? 4 * c,
    v = config.vocab_size,
    t = config.n_positions;
  const expected =
    v * c + t * c + config.n_layer * (4 * c + 3 * c * c + 3 * c + c * c + c + c * f + f + f * c + c) + 2 * c;
  assert(
    info.parameters === expected.toLocaleString(),
    `parameters ${info.parameters}, expected ${expected.toLocaleString()}`,
  );
  assert(info.weights === 'F16', `weights ${info.weights}`);
  assert(/fits/.test(info.WebGPU) && /software fallback/.test(info.WebGPU), `verdict: ${info.WebGPU}`);
  assert(!(await page.isDisabled('#load-files')), 'a good bundle cannot be loaded');
  // A truncated model.safetensors: a clear error, and nothing to load.
  const broken = `${shots}/broken`;
  mkdirSync(broken, { recursive: true });
  writeFileSync(`${broken}/model.safetensors`, readFileSync(`${dir}model.safetensors`).subarray(0, 5000));
  await page.evaluate(() => {
    delete document.getElementById('file-info').dataset.webgpu;
  });
  await page.setInputFiles('#files', [files[0], `${broken}/model.safetensors`, files[2]]);
  await page.waitForFunction(() => /not a bundle/.test(document.getElementById('file-info').textContent), null, {
    timeout: LONG,
  });
  const error = await page.textContent('#file-info');
  assert(/truncated|header/.test(error), error);
  assert(await page.isDisabled('#load-files'), 'a broken bundle can be loaded');
});

await test('a lost WebGPU device: the page says so and answers on the CPU', async () => {
  // Keep a handle on the device the next worker asks for (the reload starts a fresh worker:
  // www/protocol.js), reload the model on WebGPU, then destroy that device the way a driver
  // reset would take it away. wgpu is not told anything; it finds out as a real page would, from
  // the device-lost promise and the failed readback.
  await page.evaluate(() => {
    const hook = `const requestDevice = GPUAdapter.prototype.requestDevice;
      GPUAdapter.prototype.requestDevice = async function (...args) {
        self.lastDevice = await requestDevice.apply(this, args);
        return self.lastDevice;
      };`;
    const PageWorker = Worker;
    // The engine's script (as the page's boot blob imports it), then the hook: both run before
    // the worker takes a message.
    const boot = `import ${JSON.stringify(new URL('worker.js', location.href).href)};\n${hook}`;
    self.Worker = class extends PageWorker {
      constructor(_url, options) {
        super(URL.createObjectURL(new Blob([boot], { type: 'text/javascript' })), options);
        self.Worker = PageWorker;
      }
    };
  });
  await page.evaluate(() => {
    document.body.dataset.ready = 'false';
  });
  await page.dispatchEvent('#backend', 'change');
  await ready(page, 'gpu');
  await (await engineWorker(page)).evaluate(() => self.lastDevice.destroy());
  await page.evaluate(() => {
    document.body.dataset.ready = 'false';
  });
  await page.click('button[data-tab="chat"]');
  const before = await page.locator('#messages li.assistant').count();
  await page.fill('#prompt', 'Are you there?');
  await page.press('#prompt', 'Enter');
  await page.waitForFunction((i) => document.querySelectorAll('#messages li.assistant')[i]?.dataset.finish, before, {
    timeout: LONG,
  });
  const failed = page.locator('#messages li.assistant').nth(before);
  assert((await failed.getAttribute('data-finish')) === 'error', 'the reply on a destroyed device did not fail');
  // The failed reply starts the reload on the CPU; its status line comes after the reload.
  await page.waitForFunction(() => /device was lost/.test(document.getElementById('status').textContent), null, {
    timeout: LONG,
  });
  await ready(page, 'cpu');
  const status = await page.textContent('#status');
  assert(/CPU engine/.test(status), status);
  assert((await page.inputValue('#backend')) === 'cpu', 'the backend picker still says WebGPU');
  assert((await page.inputValue('#prompt')) === 'Are you there?', 'the message was not put back in the box');
  const r = await chat(page, 'Are you there?');
  assert(r.text.length > 0, 'no reply on the CPU after the loss');
  await page.screenshot({ path: `${shots}/device-lost.png` });
});

await test('a Llama-family model from disk (bf16 shards, its own template) chats on both engines', async () => {
  // scripts/make_llama_fixtures.py's chat-llama: HF's greedy reply to each conversation.
  const dir = new URL('../fixtures/llama/chat-llama/', import.meta.url).pathname;
  const expected = JSON.parse(readFileSync(new URL('../fixtures/llama/chat-llama.expected.json', import.meta.url)));
  await page.click('button[data-tab="models"]');
  await page.evaluate(() => {
    delete document.getElementById('file-info').dataset.webgpu;
  });
  const names = [
    'config.json',
    'model.safetensors.index.json',
    'model-00001-of-00002.safetensors',
    'model-00002-of-00002.safetensors',
    'tokenizer.json',
    'tokenizer_config.json',
    'chat_template.jinja',
    'generation_config.json',
  ];
  await page.setInputFiles(
    '#files',
    names.map((n) => dir + n),
  );
  await page.waitForFunction(() => document.getElementById('file-info').dataset.webgpu, null, { timeout: LONG });
  const info = await page.textContent('#file-info');
  assert(/llama: 2 layers × 64, 4 heads \(2 key\/value\)/.test(info) && /2 files/.test(info), info);
  const tops = [];
  for (const backend of ['cpu', 'gpu']) {
    // Switching the engine reloads the model loaded now; then load the one from disk on it.
    if ((await page.inputValue('#backend')) !== backend) {
      await page.evaluate(() => {
        document.body.dataset.ready = 'false';
      });
      await page.selectOption('#backend', backend);
      await ready(page, backend);
    }
    await page.evaluate(() => {
      document.body.dataset.ready = 'false';
    });
    await page.click('#load-files');
    await ready(page, backend);
    await page.waitForFunction(() => /llama/.test(document.getElementById('model-info').textContent), null, {
      timeout: LONG,
    });
    const model = await page.textContent('#model-info');
    assert(/llama/.test(model) && /model's own/.test(model) && /BF16/.test(model), model);
    const r = await greedyChat(page, expected.cases[0].messages[0].content);
    // Up to the first incomplete character of HF's 8-token reply (the page goes on after it).
    const want = expected.cases[0].reply.split('\uFFFD')[0];
    assert(
      r.text.startsWith(want),
      `${backend}: ${JSON.stringify(r.text)} does not start with ${JSON.stringify(want)}`,
    );
    // The other tabs work with it too: next-token bars (the same on both engines) and the
    // attention heatmap of its grouped-query heads (rows sum to 1).
    tops.push((await nextTokens(page, 'What is')).slice(0, 5).map((r) => r.token));
    await page.click('button[data-tab="attention"]');
    await page.evaluate(() => document.getElementById('heatmap').replaceChildren());
    await page.fill('#attention-text', 'What is the capital of France?');
    await page.click('#attention-form button[type="submit"]');
    await page.waitForSelector('#heatmap table', { timeout: LONG });
    const sums = await page.$$eval('#heatmap tr', (rows) =>
      rows
        .slice(1)
        .map((r) => [...r.querySelectorAll('td')].reduce((a, td) => a + (parseFloat(td.textContent) || 0), 0)),
    );
    assert(sums.length >= 5 && sums.every((x) => Math.abs(x - 1) < 0.05), `${backend}: row sums ${sums}`);
    await page.click('button[data-tab="models"]');
  }
  assert(JSON.stringify(tops[0]) === JSON.stringify(tops[1]), `next tokens: cpu ${tops[0]}, gpu ${tops[1]}`);
  await page.screenshot({ path: `${shots}/llama-from-disk.png` });
});

// A model of 9.7 billion parameters whose one file claims 3.9 GB of f16 weights: its config, and
// a safetensors header that says so (the server never has the bytes; the page must not ask).
function tooBig() {
  const config = { vocab_size: 50257, n_positions: 1024, n_embd: 8192, n_layer: 12, n_head: 64, model_type: 'gpt2' };
  // In 20 tensors: one of 3.9 GB could not be described in wasm32's 32-bit sizes at all.
  const each = 195_000_000;
  const n = 20 * each;
  const tensors = Object.fromEntries(
    Array.from({ length: 20 }, (_, i) => [
      `t${i}`,
      { dtype: 'F16', shape: [each / 2], data_offsets: [i * each, (i + 1) * each] },
    ]),
  );
  const header = Buffer.from(JSON.stringify(tensors));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(header.length));
  const head = Buffer.concat([len, header]);
  return {
    'config.json': Buffer.from(JSON.stringify(config)),
    'tokenizer.json': Buffer.from('{}'),
    head,
    size: 8 + header.length + n,
  };
}

await test('load by model id from a hub: fit check first, progress, resume, errors, stored', async () => {
  const chatFiles = folder(new URL('../fixtures/llama/chat-llama/', import.meta.url).pathname);
  const big = tooBig();
  const hub = await hubServer({
    'test-org/chat-llama': chatFiles,
    'test-org/chat-llama-b': chatFiles,
    'test-org/chat-llama-c': chatFiles,
    'test-org/chat-llama-d': chatFiles,
  });
  // The too-big model's weights: only their size and header can be asked for.
  const bigFiles = { 'config.json': big['config.json'], 'tokenizer.json': big['tokenizer.json'] };
  const original = hub.server.listeners('request')[0];
  hub.server.removeAllListeners('request');
  hub.server.on('request', (req, res) => {
    if (req.url.includes('test-org/too-big/') && req.url.endsWith('model.safetensors')) {
      hub.log.push(`${req.method} ${req.url} ${req.headers.range ?? ''}`);
      const cors = {
        'Access-Control-Allow-Origin': '*',
        'Access-Control-Expose-Headers': 'Content-Length, Content-Range',
      };
      const range = req.headers.range?.match(/^bytes=(\d+)-(\d+)$/);
      if (req.method === 'HEAD') return res.writeHead(200, { ...cors, 'Content-Length': big.size }).end();
      if (!range) return res.writeHead(500, cors).end();
      const part = big.head.subarray(Number(range[1]), Number(range[2]) + 1);
      return res
        .writeHead(206, {
          ...cors,
          'Content-Length': part.length,
          'Content-Range': `bytes ${range[1]}-${range[2]}/${big.size}`,
        })
        .end(part);
    }
    if (req.url.includes('test-org/too-big/')) {
      const f = bigFiles[req.url.split('/').pop()];
      hub.log.push(`${req.method} ${req.url}`);
      if (!f) return res.writeHead(404, { 'Access-Control-Allow-Origin': '*' }).end();
      return res.writeHead(200, { 'Access-Control-Allow-Origin': '*', 'Content-Length': f.length }).end(f);
    }
    original(req, res);
  });
  const base = `http://127.0.0.1:${hub.server.address().port}`;
  const expected = JSON.parse(readFileSync(new URL('../fixtures/llama/chat-llama.expected.json', import.meta.url)));
  await page.click('button[data-tab="models"]');
  await useHub(page, base);
  const check = async (id) => {
    await page.evaluate(() => {
      delete document.getElementById('hub-info').dataset.fits;
    });
    await page.fill('#hub-id', id);
    await page.click('#hub-form button[type="submit"]');
    await page.waitForFunction(() => document.getElementById('hub-info').dataset.fits, null, { timeout: LONG });
    return { fits: await page.getAttribute('#hub-info', 'data-fits'), text: await page.textContent('#hub-info') };
  };
  // Too large for a page: refused before any weights are fetched, with the reason.
  const refused = await check('test-org/too-big');
  assert(refused.fits === 'no' && /more than the 4.3 GB a web page can have/.test(refused.text), refused.text);
  assert(await page.isDisabled('#hub-load'), 'a model that cannot fit can be loaded');
  const bigGets = hub.log.filter((l) => l.startsWith('GET') && l.includes('too-big/') && l.endsWith('safetensors'));
  assert(bigGets.length === 0, `weights were fetched: ${bigGets}`);
  assert(
    hub.log.some((l) => l.startsWith('GET') && l.includes('too-big/') && /bytes=0-7/.test(l)),
    hub.log.join('\n'),
  );
  // A missing model: a clear error.
  const missing = await check('test-org/nothing-here');
  assert(missing.fits === 'error' && /404/.test(missing.text), missing.text);
  // The fixture: sharded (two files), fits; load it with progress, chat greedily.
  const ok = await check('test-org/chat-llama');
  assert(
    ok.fits === 'yes' && /2 file\(s\)/.test(ok.text) && /llama/.test(ok.text),
    `${ok.text}\n${hub.log.slice(-6).join('\n')}`,
  );
  const statuses = page.evaluate(
    () =>
      new Promise((resolve) => {
        const seen = [];
        const obs = new MutationObserver(() => {
          const t = document.getElementById('status').textContent;
          seen.push(t);
          if (t.startsWith('ready') || t.startsWith('could not')) {
            obs.disconnect();
            resolve(seen);
          }
        });
        obs.observe(document.getElementById('status'), { subtree: true, childList: true, characterData: true });
      }),
  );
  await page.evaluate(() => {
    document.body.dataset.ready = 'false';
  });
  await page.click('#hub-load');
  await ready(page);
  const seen = await statuses;
  assert(
    seen.some((t) => /model-00001-of-00002\.safetensors \(\d+\/\d+\) [\d.]+ MB of [\d.]+ MB/.test(t)),
    `no progress with bytes: ${seen.join(' | ')}`,
  );
  const chatWith = async () => {
    const r = await greedyChat(page, expected.cases[0].messages[0].content);
    await page.click('button[data-tab="models"]');
    return r.text;
  };
  const want = expected.cases[0].reply.split('\uFFFD')[0];
  const first = await chatWith();
  assert(first.startsWith(want), `${JSON.stringify(first)} vs ${JSON.stringify(want)}`);
  // Stored: every file, whole.
  const sizes = await page.evaluate(async (b) => {
    const c = await caches.open('wgpt-models');
    const out = {};
    for (const req of await c.keys())
      if (req.url.startsWith(b)) out[req.url.split('/').pop()] = (await (await c.match(req)).arrayBuffer()).byteLength;
    return out;
  }, base);
  for (const [f, bytes] of Object.entries(chatFiles)) {
    if (f.endsWith('.json') || f.endsWith('.safetensors') || f.endsWith('.jinja'))
      assert(sizes[f] === bytes.length, `stored ${f}: ${sizes[f]} of ${bytes.length}`);
  }
  // Loading it again comes from the cache: no weights asked of the hub.
  const before = hub.log.length;
  await page.evaluate(() => {
    document.body.dataset.ready = 'false';
  });
  await page.click('#hub-load');
  await ready(page);
  const again = hub.log.slice(before).filter((l) => l.includes('.safetensors'));
  assert(again.length === 0, `fetched again: ${again}`);
  // A connection cut half-way through a shard: the retry resumes with a range, and only the
  // whole file is stored.
  hub.cut['model-00002-of-00002.safetensors'] = 50_000;
  await check('test-org/chat-llama-b');
  await page.evaluate(() => {
    document.body.dataset.ready = 'false';
  });
  await page.click('#hub-load');
  await ready(page);
  assert(
    hub.log.some((l) => l.includes('chat-llama-b/model-00002-of-00002.safetensors') && /bytes=50000-/.test(l)),
    `no resume: ${hub.log.filter((l) => l.includes('chat-llama-b')).join('\n')}`,
  );
  const resumed = await page.evaluate(async (u) => {
    const r = await (await caches.open('wgpt-models')).match(u);
    return r ? (await r.arrayBuffer()).byteLength : 0;
  }, `${base}/test-org/chat-llama-b/resolve/main/model-00002-of-00002.safetensors`);
  assert(resumed === chatFiles['model-00002-of-00002.safetensors'].length, `stored ${resumed} bytes after a resume`);
  // A 500 in the middle of the files (the first shard arrives, the second fails): a clear error,
  // the failed file is not stored, and a retry fetches only what is missing.
  await check('test-org/chat-llama-c');
  hub.error500['model-00002-of-00002.safetensors'] = true;
  await page.click('#hub-load');
  await page.waitForFunction(() => /could not load/.test(document.getElementById('status').textContent), null, {
    timeout: LONG,
  });
  const status = await page.textContent('#status');
  assert(/HTTP 500/.test(status), status);
  delete hub.error500['model-00002-of-00002.safetensors'];
  const url = (f) => `${base}/test-org/chat-llama-c/resolve/main/${f}`;
  const stored = (u) => page.evaluate(async (u) => !!(await (await caches.open('wgpt-models')).match(u)), u);
  assert(!(await stored(url('model-00002-of-00002.safetensors'))), 'a file answered with 500 was stored');
  assert(await stored(url('model-00001-of-00002.safetensors')), 'the shard that arrived was not stored');
  const retry = hub.log.length;
  await page.evaluate(() => {
    document.body.dataset.ready = 'false';
  });
  await page.click('#hub-load');
  await ready(page);
  const fetched = hub.log.slice(retry).filter((l) => l.startsWith('GET /cdn/'));
  assert(fetched.length === 1 && fetched[0].includes('00002'), `the retry fetched ${fetched}`);
  // A file whose bytes do not match the SHA-256 the hub announces: refused, not stored.
  await check('test-org/chat-llama-d');
  hub.wrongSha['model-00001-of-00002.safetensors'] = true;
  await page.click('#hub-load');
  await page.waitForFunction(() => /could not load/.test(document.getElementById('status').textContent), null, {
    timeout: LONG,
  });
  const shaStatus = await page.textContent('#status');
  assert(/SHA-256 is [0-9a-f]{64}, the server says 0{64}; it was not stored/.test(shaStatus), shaStatus);
  const dUrl = `${base}/test-org/chat-llama-d/resolve/main/model-00001-of-00002.safetensors`;
  assert(!(await stored(dUrl)), 'a file with a wrong checksum was stored');
  delete hub.wrongSha['model-00001-of-00002.safetensors'];
  state.hub = { base, hub };
  await page.screenshot({ path: `${shots}/hub.png` });
});

await test('connect-src: the page and its engine reach this origin and the hub, nothing else', async () => {
  // Another server, not the hub: neither the page nor the engine's worker may send it a request.
  const other = await hubServer({});
  const elsewhere = `http://127.0.0.1:${other.server.address().port}/test-org/x/resolve/main/config.json`;
  const attempt = (u) =>
    fetch(u).then(
      () => 'fetched',
      (e) => `blocked: ${e.message}`,
    );
  const worker = await engineWorker(page);
  const fromWorker = await worker.evaluate(attempt, elsewhere);
  const fromPage = await page.evaluate(attempt, elsewhere);
  assert(fromWorker.startsWith('blocked') && fromPage.startsWith('blocked'), `${fromWorker}; ${fromPage}`);
  assert(other.log.length === 0, `requests reached the other server: ${other.log}`);
  // The hub is reachable from the worker (a config, as a load by id asks first).
  const hubFile = `${state.hub.base}/test-org/chat-llama/resolve/main/config.json`;
  assert((await worker.evaluate(attempt, hubFile)) === 'fetched', 'the worker cannot reach the hub');
  const policy = await page.$$eval('meta[http-equiv="Content-Security-Policy"]', (m) => m.map((e) => e.content));
  assert(policy.includes(`connect-src 'self' ${state.hub.base}`), policy.join('\n'));
  other.server.close();
});

await test('a GGUF file (Q8_0, tokenizer and template inside): from disk and by id + file name', async () => {
  // scripts/make_gguf_fixtures.py: llama.cpp's converter's Q8_0 of chat-llama, and HF's greedy
  // reply on its dequantized weights.
  const file = new URL('../fixtures/gguf/chat-llama.q8_0.gguf', import.meta.url).pathname;
  const expected = JSON.parse(readFileSync(new URL('../fixtures/gguf/chat-llama.q8_0.expected.json', import.meta.url)));
  const want = expected.chat.reply.split('\uFFFD')[0];
  const question = expected.chat.messages[0].content;
  await page.click('button[data-tab="models"]');
  const pick = async (paths) => {
    await page.evaluate(() => {
      const info = document.getElementById('file-info');
      delete info.dataset.webgpu;
      info.replaceChildren();
    });
    await page.setInputFiles('#files', paths);
    await page.waitForFunction(
      () =>
        document.getElementById('file-info').dataset.webgpu ||
        /error/.test(document.getElementById('file-info').textContent),
      null,
      { timeout: LONG },
    );
    return page.textContent('#file-info');
  };
  const info = await pick([file]);
  assert(/llama: 2 layers × 64, 4 heads \(2 key\/value\)/.test(info) && /Q8_0/.test(info), info);
  await page.evaluate(() => {
    document.body.dataset.ready = 'false';
  });
  await page.click('#load-files');
  await ready(page);
  const model = await page.textContent('#model-info');
  assert(/Q8_0/.test(model) && /model's own/.test(model), model);
  const fromDisk = await greedyChat(page, question);
  assert(fromDisk.text.startsWith(want), `${JSON.stringify(fromDisk.text)} vs ${JSON.stringify(want)}`);
  // A cut file: refused with the reason before anything is loaded.
  const dir = mkdtempSync(`${tmpdir()}/wgpt-gguf-`);
  writeFileSync(`${dir}/cut.gguf`, readFileSync(file).subarray(0, 5000));
  await page.click('button[data-tab="models"]');
  const cut = await pick([`${dir}/cut.gguf`]);
  assert(/not a model/.test(cut) && /truncated|past the end/.test(cut), cut);
  assert(await page.isDisabled('#load-files'), 'a cut GGUF can be loaded');
  rmSync(dir, { recursive: true });
  // By id and file name, from a server in the hub's layout: checked from the file's first
  // bytes (range requests, no download), then loaded with progress and chatting.
  const hub = await hubServer({ 'test-org/chat-gguf': { 'chat-llama.q8_0.gguf': readFileSync(file) } });
  const previous = await page.inputValue('#hub-base');
  await useHub(page, `http://127.0.0.1:${hub.server.address().port}`);
  await page.evaluate(() => {
    delete document.getElementById('hub-info').dataset.fits;
  });
  await page.fill('#hub-id', 'test-org/chat-gguf');
  await page.fill('#hub-file', 'chat-llama.q8_0.gguf');
  await page.click('#hub-form button[type="submit"]');
  await page.waitForFunction(() => document.getElementById('hub-info').dataset.fits, null, { timeout: LONG });
  const checked = await page.textContent('#hub-info');
  assert((await page.getAttribute('#hub-info', 'data-fits')) === 'yes' && /Q8_0/.test(checked), checked);
  const whole = hub.log.filter((l) => /^GET \/cdn\/.*\.gguf $/.test(l));
  assert(whole.length === 0, `the check downloaded the file: ${hub.log.join('\n')}`);
  await page.evaluate(() => {
    document.body.dataset.ready = 'false';
  });
  await page.click('#hub-load');
  await ready(page);
  const byId = await greedyChat(page, question);
  assert(byId.text === fromDisk.text, `${JSON.stringify(byId.text)} vs ${JSON.stringify(fromDisk.text)}`);
  await page.click('button[data-tab="models"]');
  await page.fill('#hub-file', '');
  await useHub(page, previous);
  hub.server.close();
});

// A GPT-2 of 39 M parameters in f32 (157 MB), weights all 0.01: big enough that a second full
// copy of its file during a load would show in the engine's memory.
function bigGpt2() {
  const [V, T, C, L] = [2048, 128, 512, 12];
  const shapes = [
    ['wte.weight', [V, C]],
    ['wpe.weight', [T, C]],
  ];
  for (let l = 0; l < L; l++) {
    const p = `h.${l}.`;
    shapes.push(
      [`${p}ln_1.weight`, [C]],
      [`${p}ln_1.bias`, [C]],
      [`${p}attn.c_attn.weight`, [C, 3 * C]],
      [`${p}attn.c_attn.bias`, [3 * C]],
      [`${p}attn.c_proj.weight`, [C, C]],
      [`${p}attn.c_proj.bias`, [C]],
      [`${p}ln_2.weight`, [C]],
      [`${p}ln_2.bias`, [C]],
      [`${p}mlp.c_fc.weight`, [C, 4 * C]],
      [`${p}mlp.c_fc.bias`, [4 * C]],
      [`${p}mlp.c_proj.weight`, [4 * C, C]],
      [`${p}mlp.c_proj.bias`, [C]],
    );
  }
  shapes.push(['ln_f.weight', [C]], ['ln_f.bias', [C]]);
  const header = {};
  let at = 0;
  for (const [name, shape] of shapes) {
    const bytes = shape.reduce((a, b) => a * b, 1) * 4;
    header[name] = { dtype: 'F32', shape, data_offsets: [at, at + bytes] };
    at += bytes;
  }
  let json = Buffer.from(JSON.stringify(header));
  json = Buffer.concat([json, Buffer.alloc((8 - (json.length % 8)) % 8, 0x20)]);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  const data = Buffer.from(new Float32Array(at / 4).fill(0.01).buffer);
  const config = { vocab_size: V, n_positions: T, n_embd: C, n_layer: L, n_head: 8, model_type: 'gpt2' };
  return {
    'config.json': Buffer.from(JSON.stringify(config)),
    'tokenizer.json': readFileSync(new URL('../../www/models/chat/tokenizer.json', import.meta.url)),
    'model.safetensors': Buffer.concat([len, json, data]),
  };
}

await test('loading by id holds the file once: the engine memory a 157 MB model takes', async () => {
  // A fresh page, then the model by id: the wasm memory of the worker that holds it.
  const files = bigGpt2();
  const hub = await hubServer({ 'test-org/gpt2-39m': files });
  const ctx = await browser.newContext();
  const p = await ctx.newPage();
  await p.goto(base);
  await ready(p);
  // "auto": the CPU engine here (SwiftShader is a software adapter); the host memory a load
  // takes is the same for either engine.
  await useHub(p, `http://127.0.0.1:${hub.server.address().port}`);
  await p.fill('#hub-id', 'test-org/gpt2-39m');
  await p.click('#hub-form button[type="submit"]');
  await p.waitForFunction(() => document.getElementById('hub-info').dataset.fits === 'yes', null, { timeout: LONG });
  await p.evaluate(() => {
    document.body.dataset.ready = 'false';
  });
  await p.click('#hub-load');
  await ready(p);
  // The model loads in a worker of its own (www/protocol.js): its whole wasm memory.
  const held = await (await engineWorker(p)).evaluate(() => self.wasmMemory.buffer.byteLength);
  const file = files['model.safetensors'].length;
  console.log(
    `     wasm memory: ${(held / 1e6).toFixed(0)} MB for a ${(file / 1e6).toFixed(0)} MB f32 model (${(held / file).toFixed(2)} × the file)`,
  );
  // The file, then its f32 weights (the same size here), held at once — not a third copy.
  assert(held < 2.5 * file, `the engine holds ${held} bytes for a ${file}-byte file`);
  await ctx.close();
  hub.server.close();
  // The same files picked from disk go the same way (read by the engine, src/web.rs
  // `read_model`): a fresh page, the same measurement.
  const dir = mkdtempSync(`${tmpdir()}/wgpt-big-`);
  for (const [f, b] of Object.entries(files)) writeFileSync(`${dir}/${f}`, b);
  const ctx2 = await browser.newContext();
  const p2 = await ctx2.newPage();
  await p2.goto(base);
  await ready(p2);
  await p2.click('button[data-tab="models"]');
  await p2.setInputFiles(
    '#files',
    Object.keys(files).map((f) => `${dir}/${f}`),
  );
  await p2.waitForFunction(() => !document.getElementById('load-files').disabled, null, { timeout: LONG });
  await p2.evaluate(() => {
    document.body.dataset.ready = 'false';
  });
  await p2.click('#load-files');
  await ready(p2);
  const held2 = await (await engineWorker(p2)).evaluate(() => self.wasmMemory.buffer.byteLength);
  console.log(`     from disk: ${(held2 / 1e6).toFixed(0)} MB = ${(held2 / file).toFixed(2)} × the file`);
  assert(held2 < 2.5 * file, `the engine holds ${held2} bytes for a ${file}-byte file from disk`);
  await ctx2.close();
  rmSync(dir, { recursive: true });
});

await test('offline: reload with the network blocked and chat again', async () => {
  await context.setOffline(true);
  await page.reload();
  await ready(page);
  const r = await chat(page, 'Still there?');
  assert(r.text.length > 0, 'no reply offline');
  // The model loaded by id comes back from the browser's store, without the hub.
  if (state.hub) {
    await page.click('button[data-tab="models"]');
    await page.fill('#hub-id', 'test-org/chat-llama');
    await page.evaluate(() => {
      document.body.dataset.ready = 'false';
      document.getElementById('hub-load').disabled = false;
    });
    await page.click('#hub-load');
    await ready(page);
    const model = await page.textContent('#model-info');
    assert(/llama/.test(model), model);
    await page.click('button[data-tab="chat"]');
    const again = await chat(page, 'Still there?');
    assert(again.text.length > 0, 'no reply offline from the stored hub model');
    state.hub.hub.server.close();
  }
  await context.setOffline(false);
});

await test('phone width: the chat fits the screen', async () => {
  await page.setViewportSize({ width: 390, height: 844 });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert(overflow <= 1, `${overflow}px of horizontal overflow`);
  await page.screenshot({ path: `${shots}/phone.png` });
});
await browser.close();

await test('without WebGPU the CPU engine answers', async () => {
  const b = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: [...FLAGS, '--disable-features=WebGPU'],
  });
  const p = await (await b.newContext()).newPage();
  await p.goto(base);
  await ready(p, 'cpu');
  const r = await chat(p, 'Hello?');
  assert(r.text.length > 0, 'no reply');
  await p.screenshot({ path: `${shots}/no-webgpu.png` });
  await b.close();
});

// The CPU engine's threads: the page served with COOP/COEP (xtask's server) runs the build with
// threads; a host that sends no headers gets them from the service worker after one reload; with
// the service worker blocked too, the page runs one thread and says why. Greedy replies agree.
await test('threads where the page is cross-origin isolated, one thread where not: the same reply', async () => {
  const b = await chromium.launch({ executablePath: '/usr/bin/chromium', args: FLAGS });
  const engineRow = (p) =>
    p.$$eval('#model-info dt', (dts) => dts.find((d) => d.textContent === 'engine')?.nextSibling.textContent);
  const open = async (url, serviceWorkers) => {
    const p = await (await b.newContext({ serviceWorkers })).newPage();
    await p.goto(url);
    if (serviceWorkers === 'allow') {
      // Isolated by the server, or after app.js's one reload under the service worker.
      const until = Date.now() + LONG;
      while (!(await p.evaluate(() => self.crossOriginIsolated).catch(() => false))) {
        assert(Date.now() < until, `${url} did not become cross-origin isolated`);
        await p.waitForTimeout(200);
      }
    }
    await ready(p, 'cpu');
    await p.click('button[data-tab="models"]');
    const reply = (await greedyChat(p, 'Hello')).text;
    return { p, isolated: await p.evaluate(() => self.crossOriginIsolated), row: await engineRow(p), reply };
  };
  const want = await (async () => {
    const p = await (await b.newContext()).newPage();
    await p.goto(base);
    return p.evaluate(() => Math.min(navigator.hardwareConcurrency, 8));
  })();
  assert(want > 1, `this machine reports ${want} core(s): threads cannot be tested`);
  const served = await open(base, 'allow');
  console.log(`     served with COOP/COEP: ${served.row}`);
  assert(served.isolated && served.row.endsWith(`${want} threads`), served.row);
  const plain = await plainServer();
  try {
    const none = await open(plain.url, 'block');
    console.log(`     no headers, no service worker: ${none.row}`);
    assert(!none.isolated && /one thread: this page is not cross-origin isolated/.test(none.row), none.row);
    const sw = await open(plain.url, 'allow');
    console.log(`     no headers, the service worker's: ${sw.row}`);
    assert(sw.isolated && sw.row.endsWith(`${want} threads`), sw.row);
    assert(sw.reply === served.reply && none.reply === served.reply, `${served.reply} / ${none.reply} / ${sw.reply}`);
    await sw.p.screenshot({ path: `${shots}/threads.png` });
  } finally {
    plain.server.close();
    await b.close();
  }
});

// The connect-src test's blocked requests go to /test-org/x/; any other violation is a finding.
const unexpected = consoleErrors.filter(
  (e) => !/Failed to load resource|ERR_INTERNET_DISCONNECTED/.test(e) && !e.includes('/test-org/x/resolve/'),
);
if (unexpected.length) console.log(`console errors:\n  ${unexpected.join('\n  ')}`);
finish('page tests');
