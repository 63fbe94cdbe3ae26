// The Next token tab: the ten most likely next tokens, click one to append it.
import { $, engine, setStatus } from './page.js';
import { recoverFromGpuLoss } from './models.js';

async function predict() {
  const text = $('next-text').value;
  try {
    const { rows } = await engine.request({ type: 'next', text, k: 10 });
    const ol = $('bars');
    ol.replaceChildren();
    for (const r of rows) {
      const li = document.createElement('li');
      li.title = `token ${r.id}`;
      const tok = document.createElement('span');
      tok.className = 'tok';
      tok.textContent = JSON.stringify(r.token);
      const bar = document.createElement('span');
      bar.className = 'bar';
      bar.style.width = `${(r.p * 100).toFixed(2)}%`;
      const p = document.createElement('span');
      p.textContent = `${(r.p * 100).toFixed(1)} %`;
      li.append(tok, bar, p);
      if (r.partial) {
        li.classList.add('partial');
        li.title = `token ${r.id}: part of a character (its bytes are shown); it cannot be appended alone`;
      } else {
        li.addEventListener('click', () => {
          $('next-text').value += r.token;
          predict();
        });
      }
      ol.append(li);
    }
  } catch (e) {
    if (!(await recoverFromGpuLoss(e))) setStatus(e.message, true);
  }
}
$('next-form').addEventListener('submit', (e) => {
  e.preventDefault();
  predict();
});
