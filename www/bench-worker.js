// Runs the wasm benchmark off the UI thread.
import init, { bench } from './pkg/wgpt.js';

const ready = init();

self.onmessage = async ({ data }) => {
  try {
    await ready;
    const json = await bench(
      data.shape,
      data.backend,
      data.dtype,
      data.prompt,
      data.decode,
      data.contexts,
      data.activations,
    );
    self.postMessage({ report: JSON.parse(json) });
  } catch (e) {
    self.postMessage({ error: String(e?.message ? e.message : e) });
  }
};
