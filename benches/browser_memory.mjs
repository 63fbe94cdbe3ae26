// The page's memory while it loads a model file from disk: headless Chromium (no WebGPU, so the
// CPU engine in wasm holds the weights), the page served from www/, each GGUF file (or an HF
// checkpoint's folder, its files together) picked in the Models tab and loaded, then the renderer's peak resident set (VmHWM, which the tab's worker
// shares) read from /proc — against the file's size and the renderer's size with the default
// model loaded, the baseline; and the engine worker's wasm memory once loaded (what the Rust
// side holds: the file's tensors, the tokenizer, the engine), against the file. One fresh
// browser per file, in one run.
//
//   cargo xtask e2e                     # or anything else that builds www/pkg
//   node benches/browser_memory.mjs target/bench-models/qwen2.5-0.5b.q4_0.gguf ...
//   node benches/browser_memory.mjs target/bench-models/gpt2-124m       (a folder)
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';

const require = createRequire(new URL('../tests/e2e/package.json', import.meta.url));
const { chromium } = require('playwright-core');
const { engineWorker } = await import('../tests/e2e/lib.mjs');
const PORT = 8932;
const server = spawn('python3', ['-m', 'http.server', String(PORT), '--bind', '127.0.0.1', '--directory', 'www'], {
  stdio: 'ignore',
});
await new Promise((r) => setTimeout(r, 1000));

// kB of `field` (VmRSS, VmHWM) of every renderer process of Chromium's.
function renderers(field) {
  const out = [];
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      if (!cmd.includes('--type=renderer')) continue;
      const m = readFileSync(`/proc/${pid}/status`, 'utf8').match(new RegExp(`${field}:\\s+(\\d+) kB`));
      if (m) out.push(Number(m[1]) * 1024);
    } catch {
      // the process ended between the listing and the read
    }
  }
  return out;
}
const mb = (b) => `${(b / 1e6).toFixed(0)} MB`;

console.log(
  '| file | file size | renderer, default model | renderer peak while loading it | peak − baseline | (peak − baseline) / file | engine wasm memory | ÷ file |',
);
console.log('|---|---:|---:|---:|---:|---:|---:|---:|');
try {
  for (const file of process.argv.slice(2)) {
    const browser = await chromium.launch({
      executablePath: '/usr/bin/chromium',
      args: ['--no-sandbox', '--no-first-run', '--disable-background-networking', '--disable-component-update'],
    });
    const page = await browser.newPage();
    await page.goto(`http://127.0.0.1:${PORT}/`);
    await page.waitForSelector('body[data-ready="true"]', { timeout: 300_000 });
    const baseline = Math.max(...renderers('VmRSS'));
    await page.click('button[data-tab="models"]');
    // A folder (an HF checkpoint) is picked whole: its config, weights and tokenizer files.
    const folder = statSync(file).isDirectory();
    const picked = folder ? readdirSync(file).map((f) => `${file}/${f}`) : [file];
    await page.setInputFiles('#files', picked);
    await page.waitForFunction(
      () =>
        document.getElementById('file-info').dataset.webgpu ||
        /error/.test(document.getElementById('file-info').textContent),
      null,
      { timeout: 300_000 },
    );
    await page.evaluate(() => {
      document.body.dataset.ready = 'false';
    });
    await page.click('#load-files');
    await page.waitForFunction(
      () =>
        document.body.dataset.ready === 'true' ||
        /could not load|engine stopped/.test(document.getElementById('status').textContent),
      null,
      { timeout: 900_000 },
    );
    const status = await page.textContent('#status');
    if (!/^ready/.test(status.trim())) throw new Error(`${file}: ${status}`);
    const model = await page.textContent('#model-info');
    const peak = Math.max(...renderers('VmHWM'));
    const wasm = await (await engineWorker(page)).evaluate(() => self.wasmMemory.buffer.byteLength);
    const size = picked.reduce((sum, f) => sum + statSync(f).size, 0);
    const name = file.split('/').pop();
    console.log(
      `| ${name} | ${mb(size)} | ${mb(baseline)} | ${mb(peak)} | ${mb(peak - baseline)} | ${((peak - baseline) / size).toFixed(2)}× | ${mb(wasm)} | ${(wasm / size).toFixed(2)}× |`,
    );
    console.error(`${name}: ${model.trim().slice(0, 160)}`);
    await browser.close();
  }
} finally {
  server.kill();
}
