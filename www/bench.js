// The bench page: runs wgpt's benchmark in a worker (the page never blocks) and shows the report.
const $ = (id) => document.getElementById(id);

function row(name, value) {
  const tr = document.createElement('tr');
  for (const text of [name, value]) {
    const td = document.createElement('td');
    td.textContent = text; // text, never HTML
    tr.append(td);
  }
  return tr;
}

function show(report) {
  const body = $('result').querySelector('tbody');
  body.replaceChildren();
  body.append(row('engine', report.engine));
  if (report.cpu_threads != null) body.append(row('CPU threads', String(report.cpu_threads)));
  body.append(row('parameters', `${(report.parameters / 1e6).toFixed(2)} M`));
  if (report.copy_bytes_per_s) body.append(row('copy bandwidth', `${(report.copy_bytes_per_s / 1e9).toFixed(2)} GB/s`));
  body.append(row(`prefill (${report.prefill_tokens} tokens)`, `${report.prefill_tokens_per_s.toFixed(1)} tokens/s`));
  for (const d of report.decode) {
    let text = `${d.tokens_per_s.toFixed(1)} tokens/s (${d.ms_per_token.toFixed(2)} ms)`;
    if (d.efficiency != null)
      text += `, ${d.bytes_per_token} bytes/token, efficiency ${(100 * d.efficiency).toFixed(1)} %`;
    body.append(row(`decode at context ${d.context}`, text));
  }
  if (report.dispatches_per_token != null) {
    body.append(
      row(
        'per token',
        `${report.dispatches_per_token} dispatches (${report.dispatches_per_block} per block), ${report.submits_per_token} submit`,
      ),
    );
  }
  $('result').hidden = false;
}

const worker = new Worker('bench-worker.js', { type: 'module' });
worker.onmessage = ({ data }) => {
  $('run').disabled = false;
  if (data.error) {
    $('status').textContent = `Error: ${data.error}`;
    console.log('wgpt-bench-error', data.error);
  } else {
    $('status').textContent = 'Done.';
    show(data.report);
    // One line for scripts that read the console (the xtask's page test does).
    console.log('wgpt-bench-done', JSON.stringify(data.report));
  }
};
worker.onerror = (e) => {
  $('run').disabled = false;
  $('status').textContent = `Error: ${e.message}`;
};

$('form').addEventListener('submit', (e) => {
  e.preventDefault();
  $('run').disabled = true;
  $('status').textContent = 'Running…';
  worker.postMessage({
    shape: $('shape').value,
    backend: $('backend').value,
    // f32/f16/q8_0/q4_0/q4_k: how the engine, CPU or GPU, holds the matrices.
    dtype: $('dtype').value,
    prompt: Number($('prompt').value) || 1,
    decode: Number($('decode').value) || 1,
    contexts: params.get('contexts'), // e.g. 16,256 (default: 16, ¼, ½ and the end of the context)
    activations: params.get('activations'), // q8 (default) or f32 (the reference): how the CPU engine decodes blocks
    // >1: the wasm build with threads (www/pkg-threads, `cargo xtask web`), which
    // needs a cross-origin-isolated page.
    threads: Number(params.get('threads')) || 1,
  });
});

// bench.html?run&shape=tiny&backend=gpu runs at once (for scripts and tests).
const params = new URLSearchParams(location.search);
for (const key of ['shape', 'backend', 'dtype', 'prompt', 'decode']) {
  if (params.has(key)) $(key).value = params.get(key);
}
if (params.has('run')) $('form').requestSubmit();
