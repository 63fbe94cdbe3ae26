// The Chat tab: a conversation streamed token by token, Stop, New conversation.
import { $, engine, engineName, setStatus, state } from './page.js';
import { recoverFromGpuLoss } from './models.js';

let conversation = [];

function bubble(role, text) {
  const li = document.createElement('li');
  li.className = role;
  li.textContent = text; // text, never HTML
  $('messages').append(li);
  li.scrollIntoView({ block: 'end' });
  return li;
}

function settings() {
  const num = (id) => Number($(id).value);
  return {
    temperature: num('temperature'),
    top_k: num('top-k'),
    top_p: num('top-p'),
    max_tokens: num('max-tokens'),
    seed: Math.floor(Math.random() * 2 ** 32),
  };
}

async function send() {
  const text = $('prompt').value;
  if (!text.trim() || state.generating || !state.current.info) return;
  $('prompt').value = '';
  conversation.push({ role: 'user', content: text });
  bubble('user', text);
  const li = bubble('assistant', '');
  li.classList.add('streaming');
  let reply = '';
  $('send').disabled = true;
  $('stop').disabled = false;
  state.generating = engine.request({ type: 'chat', messages: conversation, params: settings() }, (ev) => {
    if (ev.type === 'text') {
      reply += ev.text;
      li.textContent = reply;
      li.scrollIntoView({ block: 'end' });
    }
  });
  try {
    const done = await state.generating;
    conversation.push({ role: 'assistant', content: reply });
    li.dataset.finish = done.finish;
    setStatus(
      `${done.tokens} tokens${done.seconds ? ` in ${done.seconds.toFixed(1)} s (${(done.tokens / done.seconds).toFixed(1)} tokens/s)` : ''} on ${engineName(state.current.info)}${done.dropped_turns ? `; ${done.dropped_turns} old turns left out to fit the context` : ''}`,
    );
  } catch (e) {
    li.classList.add('error');
    li.dataset.finish = 'error';
    li.textContent = `error: ${e.message}`;
    conversation.pop();
    state.generating = null;
    // Recovered on the CPU: the message goes back into the box, one Enter away from a reply.
    if (await recoverFromGpuLoss(e)) $('prompt').value = text;
  } finally {
    li.classList.remove('streaming');
    state.generating = null;
    $('send').disabled = false;
    $('stop').disabled = true;
  }
}

$('chat-form').addEventListener('submit', (e) => {
  e.preventDefault();
  send();
});
$('prompt').addEventListener('keydown', (e) => {
  if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
    e.preventDefault();
    send();
  }
});
document.addEventListener('keydown', (e) => {
  if (e.key === 'Escape' && state.generating) engine.request({ type: 'stop' });
});
$('stop').addEventListener('click', () => engine.request({ type: 'stop' }));
$('new-chat').addEventListener('click', () => {
  if (!state.generating) {
    conversation = [];
    $('messages').replaceChildren();
  }
});
