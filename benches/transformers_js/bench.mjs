// transformers.js's wasm backend measured as www/bench.html measures the page's engine, in a
// worker: a prompt of PROMPT tokens (prefill), then DECODE greedy tokens at that context.
// Query (the page's, passed on by main.mjs): ?threads=N&dtype=fp32|q8. Posts one report line.
import { AutoModelForCausalLM, Tensor, env } from './transformers/transformers.js';

const PROMPT = 16;
const DECODE = 16;
const params = new URLSearchParams(self.location.search);
const threads = Number(params.get('threads')) || 1;
const dtype = params.get('dtype') || 'fp32';

env.allowRemoteModels = false;
env.allowLocalModels = true;
env.localModelPath = new URL('models/', import.meta.url).href;
env.backends.onnx.wasm.wasmPaths = new URL('ort/', import.meta.url).href;
env.backends.onnx.wasm.numThreads = threads;

// Token ids as the page's bench makes them: fixed, spread over the vocabulary.
const prompt = (vocab) => {
  const ids = Array.from({ length: PROMPT }, (_, i) => BigInt((i * 7919 + 13) % vocab));
  return {
    input_ids: new Tensor('int64', BigInt64Array.from(ids), [1, PROMPT]),
    attention_mask: new Tensor('int64', new BigInt64Array(PROMPT).fill(1n), [1, PROMPT]),
  };
};

// One generate call of `n` tokens, greedy, in seconds.
async function timed(model, inputs, n) {
  const t = performance.now();
  await model.generate({ ...inputs, max_new_tokens: n, min_new_tokens: n, do_sample: false });
  return (performance.now() - t) / 1000;
}

try {
  if (threads > 1 && !self.crossOriginIsolated) throw new Error('threads need a cross-origin-isolated page');
  const model = await AutoModelForCausalLM.from_pretrained('gpt2-124m', { device: 'wasm', dtype });
  const inputs = prompt(model.config.vocab_size);
  await timed(model, inputs, 2); // warm-up
  // Prefill: the prompt and the first token; decode: what DECODE more tokens add to that.
  const first = await timed(model, inputs, 1);
  const all = await timed(model, inputs, DECODE + 1);
  const report = {
    engine: `transformers.js ${env.version} wasm (${dtype}, ${threads} thread${threads > 1 ? 's' : ''})`,
    prefill_tokens_per_s: PROMPT / first,
    decode_tokens_per_s: DECODE / (all - first),
  };
  postMessage(`tjs-bench-done ${JSON.stringify(report)}`);
} catch (e) {
  postMessage(`tjs-bench-error ${e?.message ?? e}`);
}
