// The engine's thread: the wasm module runs here so the page never blocks. The messages are
// protocol.js's; each answer carries the request's id.
import { MODEL_FILES, errorReply } from './protocol.js';

/// The most workers the CPU engine's pool gets: decoding is bound by memory bandwidth, which a
/// few cores fill (and hardwareConcurrency counts hyperthreads).
const MAX_THREADS = 8;

// The engine's build: the one with threads (www/pkg-threads: its rayon splits run on a pool of
// workers sharing one memory) where the page is cross-origin isolated — a shared memory needs
// that — and the machine has more than one core; else the single-threaded one (www/pkg). `why`
// says why one thread, for the page to show.
async function start() {
  const cores = navigator.hardwareConcurrency || 1;
  let why;
  if (!self.crossOriginIsolated) {
    why =
      'this page is not cross-origin isolated (its host sent no COOP/COEP headers and no service worker added them)';
  } else if (cores < 2) {
    why = 'this browser reports one core';
  } else {
    try {
      const threads = Math.min(cores, MAX_THREADS);
      const m = await import('./pkg-threads/wgpt.js');
      const wasm = await m.default();
      await m.initThreadPool(threads);
      return { m, wasm, threads };
    } catch (e) {
      why = `the build with threads did not start (${e?.message ?? e})`;
    }
  }
  const m = await import('./pkg/wgpt.js');
  return { m, wasm: await m.default(), threads: 1, why };
}

let engine;
let singleThreadWhy;
const ready = start().then((started) => {
  engine = started.m;
  singleThreadWhy = started.why;
  // The engine's memory, for the page tests: the wasm memory (what a load takes; it only grows,
  // so each model gets a fresh worker: protocol.js `EngineClient`) and the bytes live on the
  // engine's heap (what the soak checks for leaks).
  self.wasmMemory = started.wasm.memory;
  self.engineHeap = engine.heap_bytes;
});
let stopRequested = false;

const post = (msg) => self.postMessage(msg);
const yieldToEvents = () => new Promise((r) => setTimeout(r, 0)); // lets a "stop" arrive

// The engine's progress callback for request `id`: a progress event after each chunk of a file.
const progress = (id) => (file, loaded, total, cached, part, parts) =>
  post({ id, type: 'progress', url: file, loaded, total, part, parts, cached });

// One reply, a few tokens per step, yielding between steps so a "stop" gets in.
async function reply(msg) {
  stopRequested = false;
  const started = performance.now();
  const params = JSON.stringify(msg.params);
  const start = JSON.parse(
    msg.type === 'chat'
      ? engine.chat_start(JSON.stringify(msg.messages), params)
      : engine.complete_start(msg.text, params, msg.stop ?? undefined),
  );
  let tokens = 0;
  for (;;) {
    if (stopRequested) {
      engine.stop_generation();
      return { type: 'done', finish: 'cancelled', tokens, ...start };
    }
    const step = JSON.parse(await engine.generate_step(4));
    tokens += step.tokens;
    if (step.text) post({ id: msg.id, type: 'text', text: step.text });
    if (step.finish) {
      const seconds = (performance.now() - started) / 1000;
      return { type: 'done', finish: step.finish, tokens, seconds, ...start };
    }
    await yieldToEvents();
  }
}

// A load's answer: the engine's description of the model, and why its CPU engine has one thread
// where it has one (the page shows both).
const loaded = (info) => ({ type: 'loaded', info: { ...JSON.parse(info), single_thread_why: singleThreadWhy } });

async function handle(msg) {
  await ready;
  switch (msg.type) {
    case 'load': {
      // Both read in Rust (src/web.rs `read_model`): the catalogue's files through the model
      // cache, picked files straight from disk; either way into wasm memory once.
      // The page's relative URLs are relative to www/, where this file is (the worker itself
      // runs from a blob: ui/page.js).
      const info = msg.url
        ? await engine.load_url_model(
            new URL(msg.url, import.meta.url).href,
            msg.names ?? MODEL_FILES,
            msg.backend,
            progress(msg.id),
          )
        : await engine.load_model(Object.keys(msg.files), Object.values(msg.files), msg.backend, progress(msg.id));
      return loaded(info);
    }
    case 'hub-inspect':
      return {
        type: 'inspected',
        info: JSON.parse(
          await engine.hub_inspect(msg.base, msg.model, msg.revision || undefined, msg.file || undefined),
        ),
      };
    case 'hub': {
      const info = await engine.load_hub_model(
        msg.base,
        msg.model,
        msg.revision || undefined,
        msg.file || undefined,
        msg.backend,
        progress(msg.id),
      );
      return loaded(info);
    }
    case 'inspect': {
      const info = msg.gguf
        ? await engine.inspect_gguf(msg.gguf, msg.size)
        : await engine.inspect_bundle(msg.config, msg.head, msg.size);
      return { type: 'inspected', info: JSON.parse(info) };
    }
    case 'chat':
    case 'complete':
      return reply(msg);
    case 'stop':
      stopRequested = true;
      return { type: 'stopping' };
    case 'next':
      return { type: 'next', rows: JSON.parse(await engine.next_tokens(msg.text, msg.k)) };
    case 'attention':
      return { type: 'attention', data: JSON.parse(await engine.attention_maps(msg.text)) };
    case 'tasks':
      return { type: 'tasks', tasks: JSON.parse(engine.task_list()) };
    case 'episode':
      return { type: 'episode', episode: JSON.parse(engine.task_episode(msg.task, msg.k, msg.description, msg.seed)) };
    default:
      throw new Error(`unknown request ${msg.type}`);
  }
}

self.onmessage = async ({ data }) => {
  try {
    post({ id: data.id, ...(await handle(data)), final: true });
  } catch (e) {
    post(errorReply(data.id, e));
  }
};
