// The Models tab: the catalogue, loading (from the catalogue or files from disk, with the
// engine's own fit check first), stored models, and falling back to the CPU when WebGPU is lost.
import { DEFAULT_HUB } from '../protocol.js';
import { $, HUB, engine, engineName, setStatus, state } from './page.js';

const TEMPLATES = {
  chatml: 'ChatML (<|im_start|> … <|im_end|>)',
  plain: 'plain transcript (User: / Assistant:)',
  jinja: "the model's own (its tokenizer config's Jinja chat template)",
};

// One `term: value` row of a description list, as text (never HTML: names come from model files).
function addRow(dl, k, v) {
  const dt = document.createElement('dt');
  dt.textContent = k;
  const dd = document.createElement('dd');
  dd.textContent = v;
  dl.append(dt, dd);
}

// The shape of a model, as load and inspect describe it.
function shapeText(i) {
  const kv = i.n_kv_head && i.n_kv_head !== i.n_head ? ` (${i.n_kv_head} key/value)` : '';
  const ctx = i.model_ctx && i.model_ctx !== i.n_ctx ? `${i.n_ctx} of its ${i.model_ctx}` : `${i.n_ctx}`;
  return `${i.arch ?? 'gpt2'}: ${i.n_layer} layers × ${i.n_embd}, ${i.n_head} heads${kv}, context ${ctx}, vocabulary ${i.vocab_size}`;
}

// The CPU engine and its threads; where it runs on one, why (a page that is not cross-origin
// isolated cannot share memory between threads).
function cpuEngine(info) {
  const n = info.cpu_threads ?? 1;
  if (n > 1) return `CPU (Rust compiled to wasm), ${n} threads`;
  return `CPU (Rust compiled to wasm), one thread${info.single_thread_why ? `: ${info.single_thread_why}` : ''}`;
}

function describe(info) {
  const dl = $('model-info');
  dl.replaceChildren();
  const rows = [
    ['engine', info.backend === 'gpu' ? 'WebGPU (WGSL kernels)' : cpuEngine(info)],
    ['parameters', info.parameters.toLocaleString()],
    ['weights', info.dtype],
    ['shape', shapeText(info)],
    ['chat template', TEMPLATES[info.template] ?? info.template],
  ];
  if (info.note) rows.push(['note', info.note]);
  for (const [k, v] of rows) addRow(dl, k, v);
}

export async function loadModel({ url = null, names = null, files = null, hub = null, name }) {
  const backend = $('backend').value;
  setStatus(`loading ${name}…`);
  $('progress').hidden = false;
  // Bytes and speed of the file being fetched, from the progress events.
  let fileStart = { url: null, t: 0 };
  try {
    // Picked files travel as `File`s (handles, not bytes): the engine reads them itself.
    const request = hub
      ? { type: 'hub', base: hub.base, model: hub.model, revision: hub.revision, file: hub.file, backend }
      : { type: 'load', url, names, files, backend };
    const res = await engine.request(request, (ev) => {
      if (ev.type !== 'progress') return;
      if (ev.url !== fileStart.url) fileStart = { url: ev.url, t: performance.now() };
      const frac = ev.total ? ev.loaded / ev.total : 0;
      $('progress').value = (ev.part + frac) / ev.parts;
      const secs = (performance.now() - fileStart.t) / 1000;
      const speed = !ev.cached && secs > 0.2 ? `, ${(ev.loaded / 1e6 / secs).toFixed(1)} MB/s` : '';
      setStatus(
        `loading ${name}: ${ev.url.split('/').pop()} (${ev.part + 1}/${ev.parts}) ${(ev.loaded / 1e6).toFixed(1)} MB${ev.total ? ` of ${(ev.total / 1e6).toFixed(1)} MB (${Math.round(frac * 100)} %)` : ''}${speed}${ev.cached ? ' from this browser' : ''}`,
      );
    });
    state.current = { url, names, files, hub, info: res.info, name };
    const role = state.catalogue.find((m) => m.path === url)?.role;
    $('fewshot-model').hidden = !url || role === 'base' || !state.catalogue.some((m) => m.role === 'base');
    describe(res.info);
    warnNotStored(res.info.not_stored);
    setStatus(`ready: ${name} on ${engineName(res.info)}${res.info.note ? ` (${res.info.note})` : ''}`);
    document.body.dataset.ready = 'true';
    document.body.dataset.backend = res.info.backend;
  } catch (e) {
    setStatus(`could not load ${name}: ${e.message}`, true);
  } finally {
    $('progress').hidden = true;
  }
}

export async function listModels() {
  const ul = $('model-list');
  try {
    const res = await fetch('models/index.json');
    const index = await res.json();
    ul.replaceChildren();
    for (const m of index.models) {
      const li = document.createElement('li');
      const b = document.createElement('button');
      b.textContent = m.hub ? `Load ${m.name} (${m.size}, from the hub)` : `Load ${m.name}`;
      b.addEventListener('click', () =>
        m.hub
          ? loadModel({
              hub: { base: HUB, model: m.hub, revision: m.revision ?? '', file: m.file ?? '' },
              name: m.name,
            })
          : loadModel({ url: m.path, names: m.files ?? null, name: m.name }),
      );
      const p = document.createElement('span');
      p.textContent = ` — ${m.description}`;
      li.append(b, p);
      ul.append(li);
    }
    state.catalogue = index.models;
    return index.models;
  } catch (e) {
    setStatus(`no model list: ${e.message}`, true);
    return [];
  }
}

// Files the browser refused to keep (a full storage quota, usually): the model runs now, but
// the next visit downloads them again; the way out is deleting stored models.
function warnNotStored(notStored = []) {
  $('storage-full').hidden = !notStored.length;
  $('storage-full-text').textContent = notStored.length
    ? `Not stored in this browser: ${notStored.join('; ')}. The model runs now and downloads again next time; deleting stored models frees space.`
    : '';
}
$('free-storage').addEventListener('click', async () => {
  document.querySelector('button[data-tab="models"]').click();
  await refreshStored();
  $('stored').scrollIntoView({ block: 'center' });
});
$('delete-stored').addEventListener('click', async () => {
  const cache = await caches.open('wgpt-models');
  for (const req of await cache.keys()) await cache.delete(req);
  warnNotStored();
  await refreshStored();
});

export async function refreshStored() {
  const ul = $('stored');
  ul.replaceChildren();
  const cache = await caches.open('wgpt-models');
  for (const req of await cache.keys()) {
    const res = await cache.match(req);
    // The engine stores every file with its length; read the body only for an entry without one.
    const size = Number(res.headers.get('content-length')) || (await res.arrayBuffer()).byteLength;
    const li = document.createElement('li');
    li.textContent = `${new URL(req.url).pathname} (${(size / 1e6).toFixed(2)} MB) `;
    const del = document.createElement('button');
    del.textContent = 'Delete';
    del.addEventListener('click', async () => {
      await cache.delete(req);
      refreshStored();
    });
    li.append(del);
    ul.append(li);
  }
  if (!ul.children.length) ul.textContent = 'nothing stored yet';
  $('delete-stored').hidden = !ul.children.length;
}

$('backend').addEventListener('change', () => {
  if (state.current.url || state.current.files) loadModel(state.current);
});

// What a picked bundle holds and whether the WebGPU engine can run it here, before loading it:
// the engine reads config.json and the safetensors header (not the weights) and answers with its
// own plan (src/web.rs `inspect_bundle`), so the page and the engine cannot disagree.
$('files').addEventListener('change', async () => {
  const info = $('file-info');
  info.replaceChildren();
  const picked = {};
  for (const f of $('files').files) picked[f.name] = f;
  const add = (k, v) => addRow(info, k, v);
  const gguf = Object.values(picked).find((f) => f.name.endsWith('.gguf'));
  if (gguf) return inspectPicked(gguf, add);
  // One weights file, or the shards an index names (the first one's header is inspected).
  const shards = Object.keys(picked)
    .filter((n) => n.endsWith('.safetensors'))
    .sort();
  const weightsName = picked['model.safetensors'] ? 'model.safetensors' : shards[0];
  const missing = ['config.json', 'tokenizer.json'].filter((n) => !picked[n]);
  if (!weightsName) missing.push('model.safetensors (or an index and its shards)');
  if (missing.length) {
    add('missing', missing.join(', '));
    $('load-files').disabled = true;
    return;
  }
  try {
    const weights = picked[weightsName];
    const length = weights.size >= 8 ? new DataView(await weights.slice(0, 8).arrayBuffer()).getBigUint64(0, true) : 0n;
    // The header only (the engine refuses one over 100 MB); the weights stay on disk.
    const head = new Uint8Array(
      await weights.slice(0, 8 + Number(length < 100_000_000n ? length : 100_000_000n)).arrayBuffer(),
    );
    const config = new Uint8Array(await picked['config.json'].arrayBuffer());
    const { info: i } = await engine.request({ type: 'inspect', config, head, size: weights.size });
    showInspected(i, weights.size, add);
    if (shards.length > 1) add('shards', `${shards.length} files`);
  } catch (e) {
    add('error', `not a bundle: ${e.message}`);
    $('load-files').disabled = true;
  }
});

// The engine's answer on a picked model, before loading it.
function showInspected(i, size, add) {
  add('size', `${(size / 1e6).toFixed(1)} MB`);
  add('parameters', i.parameters.toLocaleString());
  add('weights', i.dtypes.join(', '));
  if (i.shape.n_layer) add('shape', shapeText(i.shape));
  add('WebGPU', i.webgpu.verdict);
  $('file-info').dataset.webgpu = i.webgpu.fits ? 'fits' : 'no';
  $('load-files').disabled = false;
}

// A picked GGUF file: its metadata and tensor table are at its start; the engine reads the
// first MiB, then four times more while they run past it (up to 64 MiB), never the weights.
async function inspectPicked(file, add) {
  try {
    for (let n = 1 << 20; ; n *= 4) {
      const gguf = new Uint8Array(await file.slice(0, Math.min(n, file.size)).arrayBuffer());
      try {
        const { info: i } = await engine.request({ type: 'inspect', gguf, size: file.size });
        return showInspected(i, file.size, add);
      } catch (e) {
        if (!/truncated/.test(e.message) || n >= file.size || n >= 64 << 20) throw e;
      }
    }
  } catch (e) {
    add('error', `not a model: ${e.message}`);
    $('load-files').disabled = true;
  }
}
$('load-files').addEventListener('click', () => {
  const files = {};
  for (const f of $('files').files) files[f.name] = f;
  loadModel({ files, name: $('files').files[0]?.name ? 'the model from disk' : 'model' });
});

// A lost WebGPU device (a driver reset, a crashed GPU process): say so plainly and reload the
// model on the CPU engine, which gives the same answers. Returns whether it recovered.
export async function recoverFromGpuLoss(e) {
  if (state.current.info?.backend !== 'gpu' || e.kind !== 'device-lost') return false;
  $('backend').value = 'cpu';
  await loadModel(state.current);
  setStatus(`The WebGPU device was lost (${e.message}); the model now runs on the CPU engine. Send again.`, true);
  return true;
}

// Load by model id: the engine's fit check first (config, sizes and the first safetensors
// header; no weights), then the download with progress, into the Cache API.
$('hub-base').value = HUB;
// A new base: the page reloads, since its connect-src names the hub (ui/page.js).
$('hub-base').addEventListener('change', () => {
  const v = $('hub-base').value.trim().replace(/\/+$/, '') || DEFAULT_HUB;
  if (v !== DEFAULT_HUB) localStorage.setItem('wgpt-hub', v);
  else localStorage.removeItem('wgpt-hub');
  if (v === HUB) return;
  setStatus(`the hub is now ${v}: reloading the page to allow connections to it…`);
  location.reload();
});
function hubRequest() {
  return {
    base: HUB,
    model: $('hub-id').value.trim(),
    revision: $('hub-revision').value.trim(),
    file: $('hub-file').value.trim(),
  };
}
$('hub-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const info = $('hub-info');
  info.replaceChildren();
  delete info.dataset.fits;
  $('hub-load').disabled = true;
  const add = (k, v) => addRow(info, k, v);
  const req = hubRequest();
  add('checking', `${req.model} on ${req.base}…`);
  try {
    const { info: i } = await engine.request({ type: 'hub-inspect', ...req });
    info.replaceChildren();
    add('model', `${i.id} @ ${i.revision}${req.file ? ` / ${req.file}` : ''}`);
    add('download', `${(i.total_bytes / 1e6).toFixed(1)} MB of weights in ${i.files.length} file(s)`);
    add('parameters', i.parameters.toLocaleString());
    add('weights', i.dtypes.join(', '));
    if (i.shape.n_layer) add('shape', shapeText(i.shape));
    add('memory', i.memory.verdict);
    add('WebGPU', i.webgpu.verdict);
    info.dataset.fits = i.memory.fits ? 'yes' : 'no';
    $('hub-load').disabled = !i.memory.fits;
  } catch (err) {
    info.replaceChildren();
    add('error', err.message);
    info.dataset.fits = 'error';
  }
});
$('hub-load').addEventListener('click', () => {
  const hub = hubRequest();
  loadModel({ hub, name: hub.model }).then(refreshStored);
});
