// The engine's thread: the wasm module runs here so the page never blocks. The messages are
// protocol.js's; each answer carries the request's id.
import init, {
  load_model,
  load_url_model,
  inspect_bundle,
  inspect_gguf,
  hub_inspect,
  load_hub_model,
  chat_start,
  complete_start,
  generate_step,
  stop_generation,
  next_tokens,
  attention_maps,
  task_list,
  task_episode,
  heap_bytes,
} from './pkg/wgpt.js';
import { MODEL_FILES, errorReply } from './protocol.js';

const ready = init().then((wasm) => {
  // The engine's memory, for the page tests: the wasm memory (what a load takes; it only grows,
  // so each model gets a fresh worker: protocol.js `EngineClient`) and the bytes live on the
  // engine's heap (what the soak checks for leaks).
  self.wasmMemory = wasm.memory;
  self.engineHeap = heap_bytes;
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
      ? chat_start(JSON.stringify(msg.messages), params)
      : complete_start(msg.text, params, msg.stop ?? undefined),
  );
  let tokens = 0;
  for (;;) {
    if (stopRequested) {
      stop_generation();
      return { type: 'done', finish: 'cancelled', tokens, ...start };
    }
    const step = JSON.parse(await generate_step(4));
    tokens += step.tokens;
    if (step.text) post({ id: msg.id, type: 'text', text: step.text });
    if (step.finish) {
      const seconds = (performance.now() - started) / 1000;
      return { type: 'done', finish: step.finish, tokens, seconds, ...start };
    }
    await yieldToEvents();
  }
}

async function handle(msg) {
  await ready;
  switch (msg.type) {
    case 'load': {
      // Both read in Rust (src/web.rs `read_model`): the catalogue's files through the model
      // cache, picked files straight from disk; either way into wasm memory once.
      // The page's relative URLs are relative to www/, where this file is (the worker itself
      // runs from a blob: ui/page.js).
      const info = msg.url
        ? await load_url_model(
            new URL(msg.url, import.meta.url).href,
            msg.names ?? MODEL_FILES,
            msg.backend,
            progress(msg.id),
          )
        : await load_model(Object.keys(msg.files), Object.values(msg.files), msg.backend, progress(msg.id));
      return { type: 'loaded', info: JSON.parse(info) };
    }
    case 'hub-inspect':
      return {
        type: 'inspected',
        info: JSON.parse(await hub_inspect(msg.base, msg.model, msg.revision || undefined, msg.file || undefined)),
      };
    case 'hub': {
      const info = await load_hub_model(
        msg.base,
        msg.model,
        msg.revision || undefined,
        msg.file || undefined,
        msg.backend,
        progress(msg.id),
      );
      return { type: 'loaded', info: JSON.parse(info) };
    }
    case 'inspect': {
      const info = msg.gguf
        ? await inspect_gguf(msg.gguf, msg.size)
        : await inspect_bundle(msg.config, msg.head, msg.size);
      return { type: 'inspected', info: JSON.parse(info) };
    }
    case 'chat':
    case 'complete':
      return reply(msg);
    case 'stop':
      stopRequested = true;
      return { type: 'stopping' };
    case 'next':
      return { type: 'next', rows: JSON.parse(await next_tokens(msg.text, msg.k)) };
    case 'attention':
      return { type: 'attention', data: JSON.parse(await attention_maps(msg.text)) };
    case 'tasks':
      return { type: 'tasks', tasks: JSON.parse(task_list()) };
    case 'episode':
      return { type: 'episode', episode: JSON.parse(task_episode(msg.task, msg.k, msg.description, msg.seed)) };
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
