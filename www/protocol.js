// The messages between the page (app.js and ui/) and the engine's thread (worker.js), written
// once. A request is `{ id, type, ...fields }`; the worker answers with zero or more events
// `{ id, type, ... }` and then one final message `{ id, final: true, type, ... }`, or
// `{ id, final: true, type: 'error', error, kind }`.
//
// Requests and their final answers (`id` is the request's; a model's id travels as `model`):
//   load      { url, names? | files: { [name]: File }, backend }
//             → loaded { info }          events: progress { url, loaded, total, part, parts, cached }
//             (in a fresh worker: EngineClient below; `info.not_stored` lists the downloaded
//             files the browser refused to store, "name: why"; `info.cpu_threads` is the CPU
//             engine's threads, and `info.single_thread_why` says why one where it is one)
//             (the engine reads the files itself, src/web.rs `read_model`: `url`'s through the
//             model cache, picked `File`s from disk; into wasm memory once, with progress)
//             (a GPT-2 bundle: config.json, model.safetensors, tokenizer.json; a Llama-family
//             model also tokenizer_config.json / chat_template.jinja, generation_config.json, and
//             model.safetensors.index.json with its shards instead of model.safetensors.
//             `names` lists the files under `url`, default MODEL_FILES.)
//             (or one `.gguf` file among `files`: the model, its tokenizer and template inside)
//   inspect   { config, head, size }     (config.json bytes, the first bytes of the weights file —
//             → inspected { info }        the first shard — up to the end of its header, its size)
//             | { gguf, size }           (a GGUF file's first bytes, up to the end of its tensor table)
//   hub-inspect { base, model, revision, file? }  → inspected { info }   (whether a hub model fits
//             this page, from its config, sizes and first safetensors header — or, with `file`, a
//             .gguf in its folder, from that file's first bytes; no weights fetched)
//   hub       { base, model, revision, file?, backend } → loaded { info }  events: progress { url,
//             loaded, total, part, parts, cached } (files from the Cache API when stored, else from
//             the hub)
//   chat      { messages, params }       → done { finish, tokens, seconds, prompt_tokens, dropped_turns }
//   complete  { text, params, stop }     → done { finish, tokens, seconds, prompt_tokens, dropped_tokens }
//             events (chat, complete): text { text }
//   stop      {}                         → stopping
//   next      { text, k }                → next { rows: [{ id, token, p, partial }] }
//   attention { text }                   → attention { data: { tokens, n_layer, n_head, maps } }
//   tasks     {}                         → tasks { tasks: [{ name, description }] }
//   episode   { task, k, description, seed } → episode { episode: { prompt, answer, … } }
//
// Error kinds (set by the engine, src/web.rs, from EngineError::kind): 'device-lost',
// 'out-of-memory', 'too-large', 'unsupported', 'no-adapter', 'bad-input', 'context-full',
// 'gpu-validation', 'not-found' and 'network' (a downloaded model's files: HTTP errors, a broken transfer, a
// wrong SHA-256); 'error' for anything else.

/// The hub models load from unless the page is told otherwise (Models tab → hub).
export const DEFAULT_HUB = 'https://huggingface.co';

/// The files of a catalogue entry without a `files` list: a GPT-2 bundle.
export const MODEL_FILES = Object.freeze(['config.json', 'tokenizer.json', 'model.safetensors']);

export const REQUESTS = Object.freeze([
  'load',
  'inspect',
  'hub-inspect',
  'hub',
  'chat',
  'complete',
  'stop',
  'next',
  'attention',
  'tasks',
  'episode',
]);

/// An error from the engine, with its kind.
export class EngineError extends Error {
  constructor(message, kind = 'error') {
    super(message);
    this.name = 'EngineError';
    this.kind = kind;
  }
}

/// The page's side: one request → its events (`onEvent`) → a promise of the final answer.
///
/// Each model loads in a worker of its own, from `spawn`: a wasm memory only grows, so ending the
/// worker is the one way to give back what a bigger model took (wllama does the same). The first
/// load takes the worker the page started with; each later `load` or `hub` ends the old worker —
/// a reply being generated first, which finishes as `cancelled` with what it had — and starts a
/// new one. The old model is gone before the new one loads, as in one worker: two models never
/// share the tab's memory.
export class EngineClient {
  constructor(spawn) {
    this.spawn = spawn;
    this.nextId = 1;
    /// Called with a worker's `error` event (a script that did not load, a crash).
    this.onerror = null;
    this.start();
  }

  start() {
    const worker = this.spawn();
    const pending = new Map();
    worker.onmessage = ({ data }) => {
      const p = pending.get(data.id);
      if (!p) return;
      if (!data.final) {
        p.onEvent?.(data);
        return;
      }
      pending.delete(data.id);
      if (data.type === 'error') p.reject(new EngineError(data.error, data.kind));
      else p.resolve(data);
    };
    worker.onerror = (e) => this.onerror?.(e);
    this.worker = worker;
    this.pending = pending;
    this.loaded = false;
  }

  // Before a load: a fresh worker, unless this one never loaded a model.
  async restart() {
    if (!this.loaded) {
      this.loaded = true;
      return;
    }
    const { worker, pending } = this;
    const replies = [...pending.values()].filter((p) => p.type === 'chat' || p.type === 'complete');
    if (replies.length) {
      this.request({ type: 'stop' }).catch(() => {});
      // A reply stops at its next step; a worker that does not answer in 10 s is ended anyway.
      const ended = Promise.all(replies.map((p) => p.settled));
      await Promise.race([ended, new Promise((r) => setTimeout(r, 10_000))]);
    }
    worker.terminate();
    for (const p of pending.values()) {
      if (p.type === 'stop') p.resolve({ type: 'stopping' });
      else p.reject(new EngineError('ended: another model is loading', 'cancelled'));
    }
    this.start();
    this.loaded = true;
  }

  async request(msg, onEvent, transfer = []) {
    if (!REQUESTS.includes(msg.type)) throw new EngineError(`unknown request ${msg.type}`, 'bad-input');
    if (msg.type === 'load' || msg.type === 'hub') await this.restart();
    const id = this.nextId++;
    const { worker, pending } = this;
    const entry = { type: msg.type, onEvent };
    const answer = new Promise((resolve, reject) => {
      entry.resolve = resolve;
      entry.reject = reject;
    });
    entry.settled = answer.catch(() => {});
    pending.set(id, entry);
    worker.postMessage({ ...msg, id }, transfer);
    return answer;
  }
}

/// The worker's side: the error message a request failed with, and its kind.
export function errorReply(id, e) {
  return { id, type: 'error', error: String(e?.message ? e.message : e), kind: e?.kind ?? 'error', final: true };
}
