// The page: one module per tab (ui/), talking to the engine in worker.js through protocol.js;
// model and user text is rendered as text, never HTML.
import { setStatus } from './ui/page.js';
import { listModels, loadModel, refreshStored } from './ui/models.js';
import { loadTasks } from './ui/fewshot.js';
import './ui/chat.js';
import './ui/next.js';
import './ui/attention.js';

for (const b of document.querySelectorAll('#tabs button')) {
  b.addEventListener('click', () => {
    for (const o of document.querySelectorAll('#tabs button')) o.setAttribute('aria-selected', String(o === b));
    for (const s of document.querySelectorAll('.tab')) s.hidden = s.id !== b.dataset.tab;
    if (b.dataset.tab === 'models') refreshStored();
  });
}

if ('serviceWorker' in navigator) {
  navigator.serviceWorker.register('sw.js').catch(() => {});
  // A host that sent no COOP/COEP headers: once sw.js serves this page (it adds them), a reload
  // makes the page cross-origin isolated and the engine's CPU threads possible. Once per tab
  // session, so a browser that does not take them does not reload forever; the page then runs
  // on one thread and says why (ui/models.js).
  if (!self.crossOriginIsolated && !sessionStorage.getItem('wgpt-isolating')) {
    const reload = () => {
      sessionStorage.setItem('wgpt-isolating', '1');
      location.reload();
    };
    if (navigator.serviceWorker.controller) reload();
    else navigator.serviceWorker.addEventListener('controllerchange', reload, { once: true });
  }
}
const models = await listModels();
loadTasks().catch((e) => setStatus(e.message, true));
if (models.length) await loadModel({ url: models[0].path, name: models[0].name });
