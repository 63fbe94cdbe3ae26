// Starts bench.mjs in a module worker with this page's query and logs what it reports.
const worker = new Worker(new URL(`bench.mjs${location.search}`, import.meta.url), { type: 'module' });
worker.onmessage = ({ data }) => console.log(data);
worker.onerror = (e) => console.log(`tjs-bench-error ${e.message}`);
