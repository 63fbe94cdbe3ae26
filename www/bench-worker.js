// Runs the wasm benchmark off the UI thread: the single-threaded package, or with `threads` > 1
// the build with threads (www/pkg-threads: `cargo xtask web` builds it), whose pool of
// workers shares the module's memory (a cross-origin-isolated page only).
let loaded;

async function load(threads) {
  if (!loaded) {
    loaded = (async () => {
      if (threads <= 1) {
        const m = await import('./pkg/wgpt.js');
        await m.default();
        return m;
      }
      if (!self.crossOriginIsolated) throw new Error('threads need a cross-origin-isolated page');
      const m = await import('./pkg-threads/wgpt.js');
      await m.default();
      await m.initThreadPool(threads);
      return m;
    })();
  }
  return loaded;
}

self.onmessage = async ({ data }) => {
  try {
    const m = await load(data.threads);
    const json = await m.bench(
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
