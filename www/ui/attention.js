// The Attention tab: every layer's and head's attention probabilities as a heatmap.
import { $, engine, setStatus } from './page.js';
import { recoverFromGpuLoss } from './models.js';

let attention = null;
function drawAttention() {
  if (!attention) return;
  const { tokens, maps } = attention;
  const layer = Number($('layer').value),
    head = Number($('head').value);
  const n = tokens.length;
  const map = maps[layer].slice(head * n * n, (head + 1) * n * n);
  const table = document.createElement('table');
  const top = table.insertRow();
  top.append(document.createElement('th'));
  for (const t of tokens) {
    const th = document.createElement('th');
    th.textContent = t;
    top.append(th);
  }
  for (let i = 0; i < n; i++) {
    const row = table.insertRow();
    const th = document.createElement('th');
    th.textContent = tokens[i];
    row.append(th);
    for (let j = 0; j < n; j++) {
      const td = row.insertCell();
      const w = map[i * n + j];
      td.style.background = `rgba(29, 78, 216, ${w.toFixed(3)})`;
      td.style.color = w > 0.5 ? '#fff' : '#000';
      td.textContent = j <= i ? w.toFixed(2) : '';
      td.title = `${tokens[i]} → ${tokens[j]}: ${w.toFixed(4)}`;
    }
  }
  $('heatmap').replaceChildren(table);
}
async function showAttention() {
  try {
    const { data } = await engine.request({ type: 'attention', text: $('attention-text').value });
    attention = data;
    for (const [id, count] of [
      ['layer', data.n_layer],
      ['head', data.n_head],
    ]) {
      const sel = $(id),
        keep = sel.value;
      sel.replaceChildren(...Array.from({ length: count }, (_, i) => new Option(String(i), String(i))));
      if (keep && Number(keep) < count) sel.value = keep;
    }
    drawAttention();
  } catch (e) {
    if (!(await recoverFromGpuLoss(e))) setStatus(e.message, true);
  }
}
$('attention-form').addEventListener('submit', (e) => {
  e.preventDefault();
  showAttention();
});
$('layer').addEventListener('change', drawAttention);
$('head').addEventListener('change', drawAttention);
