// The page: talks to the engine in worker.js; renders model and user text as text, never HTML.
const $ = (id) => document.getElementById(id);
const worker = new Worker('worker.js', { type: 'module' });
const pending = new Map();
let nextId = 1;
let current = { url: null, files: null, info: null };
let catalogue = [];
let conversation = [];
let generating = null;

// One request → its streamed messages (onEvent) → a promise of the final answer.
function request(msg, onEvent) {
  const id = nextId++;
  return new Promise((resolve, reject) => {
    pending.set(id, { resolve, reject, onEvent });
    worker.postMessage({ ...msg, id }, msg.transfer || []);
  });
}
worker.onmessage = ({ data }) => {
  const p = pending.get(data.id);
  if (!p) return;
  if (!data.final) { p.onEvent?.(data); return; }
  pending.delete(data.id);
  data.type === 'error' ? p.reject(Object.assign(new Error(data.error), { kind: data.kind })) : p.resolve(data);
};
worker.onerror = (e) => setStatus(`the engine stopped: ${e.message}`, true);

function setStatus(text, error = false) {
  $('status').textContent = text;
  $('status').classList.toggle('error', error);
}

// ---- tabs ----
for (const b of document.querySelectorAll('#tabs button')) {
  b.addEventListener('click', () => {
    for (const o of document.querySelectorAll('#tabs button')) o.setAttribute('aria-selected', String(o === b));
    for (const s of document.querySelectorAll('.tab')) s.hidden = s.id !== b.dataset.tab;
    if (b.dataset.tab === 'models') refreshStored();
  });
}

// ---- models ----
function describe(info) {
  const dl = $('model-info');
  dl.replaceChildren();
  const rows = [
    ['engine', info.backend === 'gpu' ? 'WebGPU (WGSL kernels)' : 'CPU (Rust compiled to wasm)'],
    ['parameters', info.parameters.toLocaleString()],
    ['weights', info.dtype],
    ['shape', `${info.n_layer} layers × ${info.n_embd}, ${info.n_head} heads, context ${info.n_ctx}, vocabulary ${info.vocab_size}`],
    ['chat template', info.template === 'chatml' ? 'ChatML (<|im_start|> … <|im_end|>)' : 'plain transcript (User: / Assistant:)'],
  ];
  if (info.note) rows.push(['note', info.note]);
  for (const [k, v] of rows) {
    const dt = document.createElement('dt'); dt.textContent = k;
    const dd = document.createElement('dd'); dd.textContent = v;
    dl.append(dt, dd);
  }
}

async function loadModel({ url = null, files = null, name }) {
  const backend = $('backend').value;
  setStatus(`loading ${name}…`);
  $('progress').hidden = false;
  try {
    const copy = files && Object.fromEntries(Object.entries(files).map(([k, v]) => [k, v.slice()]));
    const res = await request({ type: 'load', url, files: copy, backend, transfer: copy ? Object.values(copy).map((b) => b.buffer) : [] },
      (ev) => {
        if (ev.type !== 'progress') return;
        const frac = ev.total ? ev.loaded / ev.total : 0;
        $('progress').value = (ev.part + frac) / ev.parts;
        setStatus(`loading ${name}: ${(ev.loaded / 1e6).toFixed(1)} MB${ev.total ? ` of ${(ev.total / 1e6).toFixed(1)} MB (${Math.round(frac * 100)} %)` : ''}${ev.cached ? ' from this browser' : ''}`);
      });
    current = { url, files, info: res.info, name };
    const role = catalogue.find((m) => m.path === url)?.role;
    $('fewshot-model').hidden = !url || role === 'base' || !catalogue.some((m) => m.role === 'base');
    describe(res.info);
    setStatus(`ready: ${name} on ${res.info.backend === 'gpu' ? 'WebGPU' : 'the CPU'}${res.info.note ? ` (${res.info.note})` : ''}`);
    document.body.dataset.ready = 'true';
    document.body.dataset.backend = res.info.backend;
  } catch (e) {
    setStatus(`could not load ${name}: ${e.message}`, true);
  } finally {
    $('progress').hidden = true;
  }
}

async function listModels() {
  const ul = $('model-list');
  try {
    const res = await fetch('models/index.json');
    const index = await res.json();
    ul.replaceChildren();
    for (const m of index.models) {
      const li = document.createElement('li');
      const b = document.createElement('button');
      b.textContent = `Load ${m.name}`;
      b.addEventListener('click', () => loadModel({ url: m.path, name: m.name }));
      const p = document.createElement('span');
      p.textContent = ` — ${m.description}`;
      li.append(b, p);
      ul.append(li);
    }
    catalogue = index.models;
    return index.models;
  } catch (e) {
    setStatus(`no model list: ${e.message}`, true);
    return [];
  }
}

async function refreshStored() {
  const ul = $('stored');
  ul.replaceChildren();
  const cache = await caches.open('wgpt-models');
  for (const req of await cache.keys()) {
    const res = await cache.match(req);
    const size = (await res.clone().arrayBuffer()).byteLength;
    const li = document.createElement('li');
    li.textContent = `${new URL(req.url).pathname} (${(size / 1e6).toFixed(2)} MB) `;
    const del = document.createElement('button');
    del.textContent = 'Delete';
    del.addEventListener('click', async () => { await cache.delete(req); refreshStored(); });
    li.append(del);
    ul.append(li);
  }
  if (!ul.children.length) ul.textContent = 'nothing stored yet';
}

$('backend').addEventListener('change', () => {
  if (current.url || current.files) loadModel({ url: current.url, files: current.files, name: current.name });
});

// Reads what a picked bundle holds before loading it: sizes, parameters, dtype, and whether the
// WebGPU adapter's buffer limits allow it.
$('files').addEventListener('change', async () => {
  const info = $('file-info');
  info.replaceChildren();
  const picked = {};
  for (const f of $('files').files) picked[f.name] = f;
  const add = (k, v) => { const dt = document.createElement('dt'); dt.textContent = k; const dd = document.createElement('dd'); dd.textContent = v; info.append(dt, dd); };
  const missing = ['config.json', 'model.safetensors', 'tokenizer.json'].filter((n) => !picked[n]);
  if (missing.length) { add('missing', missing.join(', ')); $('load-files').disabled = true; return; }
  try {
    const config = JSON.parse(await picked['config.json'].text());
    const head = new DataView(await picked['model.safetensors'].slice(0, 8).arrayBuffer());
    const headerLen = Number(head.getBigUint64(0, true));
    const header = JSON.parse(await picked['model.safetensors'].slice(8, 8 + headerLen).text());
    let params = 0, dtype = '', largest = 0;
    for (const [name, t] of Object.entries(header)) {
      if (name === '__metadata__' || name.endsWith('attn.bias') || name.endsWith('masked_bias')) continue;
      const n = t.shape.reduce((a, b) => a * b, 1);
      params += n; dtype = t.dtype; largest = Math.max(largest, t.data_offsets[1] - t.data_offsets[0]);
    }
    add('size', `${(picked['model.safetensors'].size / 1e6).toFixed(1)} MB`);
    add('parameters', params.toLocaleString());
    add('weights', dtype);
    add('shape', `${config.n_layer} layers × ${config.n_embd}, ${config.n_head} heads, context ${config.n_positions ?? config.n_ctx}`);
    const adapter = navigator.gpu && await navigator.gpu.requestAdapter();
    if (adapter) {
      const maxBuffer = Number(adapter.limits.maxBufferSize);
      add('WebGPU', picked['model.safetensors'].size <= 8 * maxBuffer
        ? `fits (largest tensor ${(largest / 1e6).toFixed(1)} MB, adapter buffers up to ${(maxBuffer / 1e6).toFixed(0)} MB; larger tensors are split)`
        : 'too large for this adapter: it will run on the CPU engine');
    } else {
      add('WebGPU', 'not available: it will run on the CPU engine');
    }
    $('load-files').disabled = false;
  } catch (e) {
    add('error', `not a bundle: ${e.message}`);
    $('load-files').disabled = true;
  }
});
$('load-files').addEventListener('click', async () => {
  const files = {};
  for (const f of $('files').files) files[f.name] = new Uint8Array(await f.arrayBuffer());
  loadModel({ files, name: $('files').files[0]?.name ? 'the bundle from disk' : 'bundle' });
});

// A lost WebGPU device (a driver reset, a crashed GPU process): say so plainly and reload the
// model on the CPU engine, which gives the same answers. Returns whether it recovered.
async function recoverFromGpuLoss(e) {
  if (current.info?.backend !== 'gpu' || e.kind !== 'device-lost') return false;
  $('backend').value = 'cpu';
  await loadModel({ url: current.url, files: current.files, name: current.name });
  setStatus(`The WebGPU device was lost (${e.message}); the model now runs on the CPU engine. Send again.`, true);
  return true;
}

// ---- chat ----
function bubble(role, text) {
  const li = document.createElement('li');
  li.className = role;
  li.textContent = text; // text, never HTML
  $('messages').append(li);
  li.scrollIntoView({ block: 'end' });
  return li;
}

function settings() {
  const num = (id) => Number($(id).value);
  return { temperature: num('temperature'), top_k: num('top-k'), top_p: num('top-p'), max_tokens: num('max-tokens'), seed: Math.floor(Math.random() * 2 ** 32) };
}

async function send() {
  const text = $('prompt').value;
  if (!text.trim() || generating || !current.info) return;
  $('prompt').value = '';
  conversation.push({ role: 'user', content: text });
  bubble('user', text);
  const li = bubble('assistant', '');
  li.classList.add('streaming');
  let reply = '';
  $('send').disabled = true; $('stop').disabled = false;
  generating = request({ type: 'chat', messages: conversation, params: settings() }, (ev) => {
    if (ev.type === 'text') { reply += ev.text; li.textContent = reply; li.scrollIntoView({ block: 'end' }); }
  });
  try {
    const done = await generating;
    conversation.push({ role: 'assistant', content: reply });
    li.dataset.finish = done.finish;
    setStatus(`${done.tokens} tokens${done.seconds ? ` in ${done.seconds.toFixed(1)} s (${(done.tokens / done.seconds).toFixed(1)} tokens/s)` : ''} on ${current.info.backend === 'gpu' ? 'WebGPU' : 'the CPU'}${done.dropped_turns ? `; ${done.dropped_turns} old turns left out to fit the context` : ''}`);
  } catch (e) {
    li.classList.add('error');
    li.dataset.finish = 'error';
    li.textContent = `error: ${e.message}`;
    conversation.pop();
    generating = null;
    // Recovered on the CPU: the message goes back into the box, one Enter away from a reply.
    if (await recoverFromGpuLoss(e)) $('prompt').value = text;
  } finally {
    li.classList.remove('streaming');
    generating = null;
    $('send').disabled = false; $('stop').disabled = true;
  }
}

$('chat-form').addEventListener('submit', (e) => { e.preventDefault(); send(); });
$('prompt').addEventListener('keydown', (e) => {
  if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); send(); }
});
document.addEventListener('keydown', (e) => { if (e.key === 'Escape' && generating) request({ type: 'stop' }); });
$('stop').addEventListener('click', () => request({ type: 'stop' }));
$('new-chat').addEventListener('click', () => { if (!generating) { conversation = []; $('messages').replaceChildren(); } });

// ---- few-shot ----
// Episodes come from the worker (the trainer's Rust, compiled to wasm), so the prompt here is the
// one `wgpt-train eval` scores. The model completes it greedily up to the end of the line.
let episode = null;
const GREEDY = { temperature: 0, top_k: 0, top_p: 1, max_tokens: 24, seed: 0 };

async function loadTasks() {
  const { tasks } = await request({ type: 'tasks' });
  $('task').replaceChildren(...tasks.map((t) => new Option(`${t.name} — ${t.description}`, t.name)));
  await newEpisode();
}

async function buildEpisode(task, k, description, seed) {
  return (await request({ type: 'episode', task, k, description, seed })).episode;
}

async function newEpisode() {
  const seed = Math.max(0, Math.min(2 ** 32 - 1, Math.floor(Number($('episode').value) || 0)));
  $('episode').value = String(seed);
  try {
    episode = await buildEpisode($('task').value, Number($('shots').value), $('with-desc').checked, seed);
    $('fewshot-prompt').value = episode.prompt;
    $('fewshot-expected').textContent = episode.answer;
    $('fewshot-output').textContent = '';
    $('fewshot-output').className = '';
  } catch (e) { setStatus(e.message, true); }
}

// Greedy completion of `text` up to the line break; the first line, trimmed.
async function completeLine(text) {
  let out = '';
  await request({ type: 'complete', text, params: GREEDY, stop: '\n' }, (ev) => { if (ev.type === 'text') out += ev.text; });
  return out.split('\n')[0].trim();
}

async function runFewshot() {
  if (generating || !current.info) return;
  const out = $('fewshot-output');
  out.textContent = '…'; out.className = '';
  generating = true;
  try {
    const answer = await completeLine($('fewshot-prompt').value);
    out.textContent = answer || '(nothing)';
    // Scored only while the prompt is the episode's own; an edited prompt has no expected answer.
    if (episode && $('fewshot-prompt').value === episode.prompt) out.className = answer === episode.answer ? 'right' : 'wrong';
  } catch (e) { out.textContent = `error: ${e.message}`; out.className = 'wrong'; }
  finally { generating = null; }
}

// The GPT-3 comparison on this page: the same 10 held-out queries with 0, 1, 2, 4, 8 examples.
async function sweep() {
  if (generating || !current.info) return;
  generating = true;
  const task = $('task').value, description = $('with-desc').checked, first = Number($('episode').value) || 0;
  const table = $('fewshot-table');
  table.replaceChildren();
  const head = table.insertRow();
  for (const h of ['examples', 'right', 'accuracy', '']) { const th = document.createElement('th'); th.textContent = h; head.append(th); }
  try {
    for (const k of [0, 1, 2, 4, 8]) {
      const row = table.insertRow();
      row.insertCell().textContent = String(k);
      const right = row.insertCell(), acc = row.insertCell();
      // Accuracy against k as a bar chart, one bar per row.
      const bar = document.createElement('span');
      bar.className = 'bar';
      row.insertCell().append(bar);
      let ok = 0;
      for (let i = 0; i < 10; i++) {
        const e = await buildEpisode(task, k, description, first + i);
        if ((await completeLine(e.prompt)) === e.answer) ok++;
        right.textContent = `${ok} / ${i + 1}`;
        bar.style.width = `${(ok / (i + 1)) * 12}rem`;
      }
      acc.textContent = `${ok * 10} %`;
    }
    table.dataset.done = 'true';
  } catch (e) { setStatus(e.message, true); }
  finally { generating = null; }
}

$('task').addEventListener('change', newEpisode);
$('shots').addEventListener('change', newEpisode);
$('with-desc').addEventListener('change', newEpisode);
$('episode').addEventListener('change', newEpisode);
$('next-episode').addEventListener('click', () => { $('episode').value = String((Number($('episode').value) || 0) + 1); newEpisode(); });
$('fewshot-run').addEventListener('click', runFewshot);
$('use-base').addEventListener('click', () => {
  const base = catalogue.find((m) => m.role === 'base');
  if (base && !generating) loadModel({ url: base.path, name: base.name });
});
$('fewshot-sweep').addEventListener('click', sweep);

// ---- next token ----
async function predict() {
  const text = $('next-text').value;
  try {
    const { rows } = await request({ type: 'next', text, k: 10 });
    const ol = $('bars');
    ol.replaceChildren();
    for (const r of rows) {
      const li = document.createElement('li');
      li.title = `token ${r.id}`;
      const tok = document.createElement('span'); tok.className = 'tok'; tok.textContent = JSON.stringify(r.token);
      const bar = document.createElement('span'); bar.className = 'bar'; bar.style.width = `${(r.p * 100).toFixed(2)}%`;
      const p = document.createElement('span'); p.textContent = `${(r.p * 100).toFixed(1)} %`;
      li.append(tok, bar, p);
      if (r.partial) {
        li.classList.add('partial');
        li.title = `token ${r.id}: part of a character (its bytes are shown); it cannot be appended alone`;
      } else {
        li.addEventListener('click', () => { $('next-text').value += r.token; predict(); });
      }
      ol.append(li);
    }
  } catch (e) { if (!(await recoverFromGpuLoss(e))) setStatus(e.message, true); }
}
$('next-form').addEventListener('submit', (e) => { e.preventDefault(); predict(); });

// ---- attention ----
let attention = null;
function drawAttention() {
  if (!attention) return;
  const { tokens, maps } = attention;
  const layer = Number($('layer').value), head = Number($('head').value);
  const n = tokens.length;
  const map = maps[layer].slice(head * n * n, (head + 1) * n * n);
  const table = document.createElement('table');
  const top = table.insertRow();
  top.append(document.createElement('th'));
  for (const t of tokens) { const th = document.createElement('th'); th.textContent = t; top.append(th); }
  for (let i = 0; i < n; i++) {
    const row = table.insertRow();
    const th = document.createElement('th'); th.textContent = tokens[i]; row.append(th);
    for (let j = 0; j < n; j++) {
      const td = row.insertCell();
      const w = map[i * n + j];
      td.style.background = `rgba(29, 78, 216, ${w.toFixed(3)})`;
      td.style.color = w > 0.5 ? '#fff' : '#000';
      td.textContent = j <= i ? w.toFixed(2) : '';
      td.title = `${tokens[i]} → ${tokens[j]}: ${w.toFixed(4)}`;
    }
  }
  $('heatmap').replaceChildren(table);
}
async function showAttention() {
  try {
    const { data } = await request({ type: 'attention', text: $('attention-text').value });
    attention = data;
    for (const [id, count] of [['layer', data.n_layer], ['head', data.n_head]]) {
      const sel = $(id), keep = sel.value;
      sel.replaceChildren(...Array.from({ length: count }, (_, i) => new Option(String(i), String(i))));
      if (keep && Number(keep) < count) sel.value = keep;
    }
    drawAttention();
  } catch (e) { if (!(await recoverFromGpuLoss(e))) setStatus(e.message, true); }
}
$('attention-form').addEventListener('submit', (e) => { e.preventDefault(); showAttention(); });
$('layer').addEventListener('change', drawAttention);
$('head').addEventListener('change', drawAttention);

// ---- start ----
if ('serviceWorker' in navigator) navigator.serviceWorker.register('sw.js').catch(() => {});
const models = await listModels();
loadTasks().catch((e) => setStatus(e.message, true));
if (models.length) await loadModel({ url: models[0].path, name: models[0].name });
