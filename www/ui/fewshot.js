// The Few-shot tab: the GPT-3 demo on held-out task episodes built by the trainer's Rust.
import { $, engine, setStatus, state } from './page.js';
import { loadModel } from './models.js';

// Episodes come from the worker (the trainer's Rust, compiled to wasm), so the prompt here is the
// one `wgpt-train eval` scores. The model completes it greedily up to the end of the line.
let episode = null;
const GREEDY = { temperature: 0, top_k: 0, top_p: 1, max_tokens: 24, seed: 0 };

export async function loadTasks() {
  const { tasks } = await engine.request({ type: 'tasks' });
  $('task').replaceChildren(...tasks.map((t) => new Option(`${t.name} — ${t.description}`, t.name)));
  await newEpisode();
}

async function buildEpisode(task, k, description, seed) {
  return (await engine.request({ type: 'episode', task, k, description, seed })).episode;
}

async function newEpisode() {
  const seed = Math.max(0, Math.min(2 ** 32 - 1, Math.floor(Number($('episode').value) || 0)));
  $('episode').value = String(seed);
  try {
    episode = await buildEpisode($('task').value, Number($('shots').value), $('with-desc').checked, seed);
    $('fewshot-prompt').value = episode.prompt;
    $('fewshot-expected').textContent = episode.answer;
    $('fewshot-output').textContent = '';
    $('fewshot-output').className = '';
  } catch (e) {
    setStatus(e.message, true);
  }
}

// Greedy completion of `text` up to the line break; the first line, trimmed.
async function completeLine(text) {
  let out = '';
  await engine.request({ type: 'complete', text, params: GREEDY, stop: '\n' }, (ev) => {
    if (ev.type === 'text') out += ev.text;
  });
  return out.split('\n')[0].trim();
}

async function runFewshot() {
  if (state.generating || !state.current.info) return;
  const out = $('fewshot-output');
  out.textContent = '…';
  out.className = '';
  state.generating = true;
  try {
    const answer = await completeLine($('fewshot-prompt').value);
    out.textContent = answer || '(nothing)';
    // Scored only while the prompt is the episode's own; an edited prompt has no expected answer.
    if (episode && $('fewshot-prompt').value === episode.prompt)
      out.className = answer === episode.answer ? 'right' : 'wrong';
  } catch (e) {
    out.textContent = `error: ${e.message}`;
    out.className = 'wrong';
  } finally {
    state.generating = null;
  }
}

// The GPT-3 comparison on this page: the same 10 held-out queries with 0, 1, 2, 4, 8 examples.
async function sweep() {
  if (state.generating || !state.current.info) return;
  state.generating = true;
  const task = $('task').value,
    description = $('with-desc').checked,
    first = Number($('episode').value) || 0;
  const table = $('fewshot-table');
  table.replaceChildren();
  const head = table.insertRow();
  for (const h of ['examples', 'right', 'accuracy', '']) {
    const th = document.createElement('th');
    th.textContent = h;
    head.append(th);
  }
  try {
    for (const k of [0, 1, 2, 4, 8]) {
      const row = table.insertRow();
      row.insertCell().textContent = String(k);
      const right = row.insertCell(),
        acc = row.insertCell();
      // Accuracy against k as a bar chart, one bar per row.
      const bar = document.createElement('span');
      bar.className = 'bar';
      row.insertCell().append(bar);
      let ok = 0;
      for (let i = 0; i < 10; i++) {
        const e = await buildEpisode(task, k, description, first + i);
        if ((await completeLine(e.prompt)) === e.answer) ok++;
        right.textContent = `${ok} / ${i + 1}`;
        bar.style.width = `${(ok / (i + 1)) * 12}rem`;
      }
      acc.textContent = `${ok * 10} %`;
    }
    table.dataset.done = 'true';
  } catch (e) {
    setStatus(e.message, true);
  } finally {
    state.generating = null;
  }
}

$('task').addEventListener('change', newEpisode);
$('shots').addEventListener('change', newEpisode);
$('with-desc').addEventListener('change', newEpisode);
$('episode').addEventListener('change', newEpisode);
$('next-episode').addEventListener('click', () => {
  $('episode').value = String((Number($('episode').value) || 0) + 1);
  newEpisode();
});
$('fewshot-run').addEventListener('click', runFewshot);
$('use-base').addEventListener('click', () => {
  const base = state.catalogue.find((m) => m.role === 'base');
  if (base && !state.generating) loadModel({ url: base.path, name: base.name });
});
$('fewshot-sweep').addEventListener('click', sweep);
