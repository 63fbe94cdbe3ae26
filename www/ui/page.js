// What every part of the page shares: the engine client (protocol.js) over the worker, the
// status line, and the state the tabs read and write.
import { DEFAULT_HUB, EngineClient } from '../protocol.js';

export const $ = (id) => document.getElementById(id);

/// The hub models load from: a setting kept in this browser (a mirror in the hub's layout), as
/// it was when this page started — its connect-src names that one (another tab may change the
/// setting; this page takes it at its next load).
export const HUB = localStorage.getItem('wgpt-hub') || DEFAULT_HUB;

/// The origins a model may come from besides this page's: the hub's (for huggingface.co also its
/// file stores, where it redirects weights: cdn-lfs*.hf.co, cas-bridge.xethub.hf.co).
export function hubSources(base) {
  let origin;
  try {
    origin = new URL(base).origin;
  } catch {
    return [];
  }
  if (!/^https?:/.test(origin)) return [];
  return origin === new URL(DEFAULT_HUB).origin ? [origin, 'https://*.hf.co'] : [origin];
}

// Model files come from strangers; the page and its engine connect to this origin and the hub
// only. index.html's policy leaves connect-src open for this second one, added before the engine
// starts (policies only ever narrow, so a new hub base takes a reload: ui/models.js).
const csp = document.createElement('meta');
csp.httpEquiv = 'Content-Security-Policy';
csp.content = `connect-src 'self' ${hubSources(HUB).join(' ')}`;
document.head.append(csp);

// The engine's worker starts from a blob that imports worker.js: a worker from a blob inherits
// the page's policies (one from a URL would get only its response's headers, which a static
// host cannot be trusted to send). A fresh one for each model (protocol.js `EngineClient`).
const boot = URL.createObjectURL(
  new Blob([`import ${JSON.stringify(new URL('../worker.js', import.meta.url).href)};`], { type: 'text/javascript' }),
);
export const engine = new EngineClient(() => new Worker(boot, { type: 'module' }));
engine.onerror = (e) => setStatus(`the engine stopped: ${e.message}`, true);

export const state = {
  /// The loaded model: where it came from and the engine's description of it.
  current: { url: null, files: null, info: null, name: null },
  /// The shipped models (models/index.json).
  catalogue: [],
  /// A reply being generated (a promise), or null.
  generating: null,
};

/// The engine that answers, as the page names it: WebGPU, or the CPU with its threads.
export function engineName(info) {
  if (info.backend === 'gpu') return 'WebGPU';
  const n = info.cpu_threads ?? 1;
  return `the CPU (${n} thread${n === 1 ? '' : 's'})`;
}

export function setStatus(text, error = false) {
  $('status').textContent = text;
  $('status').classList.toggle('error', error);
}
