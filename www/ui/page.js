// What every part of the page shares: the engine client (protocol.js) over the worker, the
// status line, and the state the tabs read and write.
import { EngineClient } from '../protocol.js';

export const $ = (id) => document.getElementById(id);

export const engine = new EngineClient(new Worker('worker.js', { type: 'module' }));

export const state = {
  /// The loaded model: where it came from and the engine's description of it.
  current: { url: null, files: null, info: null, name: null },
  /// The shipped models (models/index.json).
  catalogue: [],
  /// A reply being generated (a promise), or null.
  generating: null,
};

export function setStatus(text, error = false) {
  $('status').textContent = text;
  $('status').classList.toggle('error', error);
}

engine.worker.onerror = (e) => setStatus(`the engine stopped: ${e.message}`, true);
