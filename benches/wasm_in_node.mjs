// The page's CPU engine (the single-threaded wasm package) run by node's V8 without a browser:
// the bench page's `bench()` called directly, so two builds of the package can be compared in the
// same minutes, and profiled (`node --cpu-prof`: the wasm functions keep their Rust names).
// Prints the report `bench()` returns, one line per package.
//
//   cargo xtask web                      # or anything else that builds www/pkg
//   node benches/wasm_in_node.mjs [DTYPE] [ACTIVATIONS] [SHAPE] [PKG…]
//   (defaults: f16, q8, smollm2-135m, www/pkg; DTYPE f32, f16, q8_0, q4_0 or q4_k; ACTIVATIONS q8 or f32)
//
// To compare with an older commit: build its package into another folder (`cargo build --release
// --lib --target wasm32-unknown-unknown`, then `wasm-bindgen --target web --no-typescript
// --out-dir DIR target/wasm32-unknown-unknown/release/wgpt.wasm`) and pass both folders.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const [dtype = 'f16', activations = 'q8', shape = 'smollm2-135m', ...pkgs] = process.argv.slice(2);
for (const dir of pkgs.length ? pkgs : ['www/pkg']) {
  const pkg = resolve(dir);
  const wgpt = await import(pathToFileURL(`${pkg}/wgpt.js`).href);
  wgpt.initSync({ module: readFileSync(`${pkg}/wgpt_bg.wasm`) });
  const r = JSON.parse(await wgpt.bench(shape, 'cpu', dtype, 16, 16, '16', activations));
  const d = r.decode[0];
  console.log(
    `${dir}: ${r.engine}, ${shape}: prefill (16) ${r.prefill_tokens_per_s.toFixed(1)} tokens/s,` +
      ` decode (context 16) ${d.tokens_per_s.toFixed(1)} tokens/s`,
  );
}
