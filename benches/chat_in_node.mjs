// The page's CPU engine (the single-threaded wasm package) chatting in node's V8: a GGUF file
// loaded as the page loads a picked file, then a continuation of a fixed prompt decoded greedily
// and with the chat tab's sampling settings (temperature 0.8, top-k 40, top-p 0.95), as
// `generate_step` runs them for the page. Prints tokens/s of each, one line per package, so two
// builds compare in the same minutes (the bench page decodes greedily, without the sampler).
//
//   cargo xtask web                      # or anything else that builds www/pkg
//   node benches/chat_in_node.mjs MODEL.gguf [PKG…]     (default www/pkg)
//   node benches/chat_in_node.mjs target/bench-models/smollm2-135m.q4_0.gguf
import { readFileSync } from 'node:fs';
import { basename, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const [model, ...pkgs] = process.argv.slice(2);
if (!model) {
  console.error('usage: node benches/chat_in_node.mjs MODEL.gguf [PKG…]');
  process.exit(2);
}
const settings = [
  ['greedy', { temperature: 0, top_k: 0, top_p: 1 }],
  ['chat settings', { temperature: 0.8, top_k: 40, top_p: 0.95 }],
];
for (const dir of pkgs.length ? pkgs : ['www/pkg']) {
  const pkg = resolve(dir);
  const wgpt = await import(pathToFileURL(`${pkg}/wgpt.js`).href);
  wgpt.initSync({ module: readFileSync(`${pkg}/wgpt_bg.wasm`) });
  await wgpt.load_model([basename(model)], [new Blob([readFileSync(model)])], 'cpu', null);
  const out = [];
  for (const [name, params] of settings) {
    wgpt.complete_start('Once upon a time', JSON.stringify({ ...params, seed: 1, max_tokens: 100 }), null);
    await wgpt.generate_step(4); // the prompt and the first tokens, not timed
    const start = performance.now();
    let tokens = 0;
    for (;;) {
      const step = JSON.parse(await wgpt.generate_step(8));
      tokens += step.tokens;
      if (step.finish) break;
    }
    out.push(`${name} ${tokens} tokens, ${((1000 * tokens) / (performance.now() - start)).toFixed(1)} tokens/s`);
  }
  console.log(`${dir}: ${out.join('; ')}`);
}
