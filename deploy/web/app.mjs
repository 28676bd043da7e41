// The deploy half of the Caffe2 story in a browser: fetch request.json (the serving batch and the
// models, written by deploy/web.py), run each model with onnxruntime-web's WebAssembly backend,
// show y_pred and the latency, and leave everything in window.fourways for the test.
//
// index.html?threads=T sets the WASM thread count; more than one needs a cross-origin isolated
// page (COOP/COEP headers), which deploy/web.py's server sends.
import * as ort from "./ort/ort.wasm.min.mjs";

const BLOCK_MS = 1; // a timed block runs calls until it lasts this long: 200x the isolated timer's 5 us
const SHOWN_ROWS = 4;

const state = { status: "running" };
window.fourways = state;

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

// How many calls make one block of BLOCK_MS: the timer's resolution is coarse (5 us isolated, 100 us
// not), a batch-1 call takes about 10 us, so each sample is the mean call time of a block.
async function callsPerBlock(run) {
  let k = 1;
  for (;;) {
    const start = performance.now();
    for (let i = 0; i < k; i++) await run();
    if (performance.now() - start >= BLOCK_MS || k >= 1 << 20) return k;
    k *= 2;
  }
}

// 1 + warmup + repeats samples, as the other deploy rows are timed: the reader drops the first 1 + warmup.
async function timeCalls(run, warmup, repeats) {
  const k = await callsPerBlock(run);
  const samples = [];
  for (let r = 0; r < 1 + warmup + repeats; r++) {
    const start = performance.now();
    for (let i = 0; i < k; i++) await run();
    samples.push((performance.now() - start) / k);
  }
  return { times_ms: samples, calls_per_sample: k };
}

// From the URL to a session ready to run: fetch the graph (and its external data) and create.
async function loadSession(model, options) {
  const graph = new Uint8Array(await (await fetch(model.url, { cache: "no-store" })).arrayBuffer());
  const externalData = [];
  for (const file of model.external_data) {
    const bytes = new Uint8Array(await (await fetch(file.url, { cache: "no-store" })).arrayBuffer());
    externalData.push({ path: file.path, data: bytes });
  }
  return ort.InferenceSession.create(graph, externalData.length ? { ...options, externalData } : options);
}

async function timeLoads(model, options, loads) {
  (await loadSession(model, options)).release(); // the first: compiles the runtime's code paths
  const times = [];
  for (let i = 0; i < loads; i++) {
    const start = performance.now();
    const session = await loadSession(model, options);
    times.push(performance.now() - start);
    await session.release();
  }
  return median(times);
}

function timerResolutionMs() {
  let smallest = Infinity;
  for (let i = 0; i < 1000; i++) {
    const a = performance.now();
    let b = performance.now();
    while (b === a) b = performance.now();
    smallest = Math.min(smallest, b - a);
  }
  return smallest;
}

async function main() {
  const threads = Number(new URLSearchParams(location.search).get("threads") || "1");
  const request = await (await fetch("request.json", { cache: "no-store" })).json();
  ort.env.wasm.wasmPaths = new URL("./ort/", location.href).href;
  ort.env.wasm.numThreads = threads;
  ort.env.wasm.proxy = false;
  Object.assign(state, {
    threads, warmup: request.warmup, cross_origin_isolated: self.crossOriginIsolated, timer_resolution_ms: timerResolutionMs(),
    user_agent: navigator.userAgent, ort_version: ort.env.versions?.web ?? null, models: [],
  });
  if (threads > 1 && !self.crossOriginIsolated) {
    throw new Error(`${threads} threads need a cross-origin isolated page (COOP/COEP headers); this one is not`);
  }
  const Typed = request.dtype === "float64" ? Float64Array : Float32Array;
  const x = Typed.from(request.data);
  const options = { executionProviders: ["wasm"], graphOptimizationLevel: "all" };
  for (const model of request.models) {
    try {
      state.models.push(await runModel(model, request, x, options));
    } catch (err) { // one model that fails (a corrupt file, say) leaves the others' results standing
      state.models.push({ name: model.name, error: String(err?.message ?? err), batches: [] });
    }
  }
}

async function runModel(model, request, x, options) {
  const load_ms = await timeLoads(model, options, request.loads);
  const session = await loadSession(model, options);
  const found = { name: model.name, load_ms, batches: [] };
  for (const batch of request.batches) {
    const [, dIn] = request.shape;
    const feeds = { [session.inputNames[0]]: new ort.Tensor(request.dtype, x.subarray(0, batch * dIn), [batch, dIn]) };
    const y = (await session.run(feeds))[session.outputNames[0]];
    const timed = await timeCalls(() => session.run(feeds), request.warmup, request.repeats);
    found.batches.push({ batch, dims: y.dims, data: Array.from(y.data), ...timed });
  }
  await session.release();
  return found;
}

function show() {
  const status = document.getElementById("status");
  document.getElementById("results").textContent = JSON.stringify(state);
  if (state.status === "error") {
    status.textContent = `error: ${state.error}`;
    status.className = "error";
    return;
  }
  const failed = state.models.filter((m) => m.error);
  status.textContent = `done: ${state.models.length - failed.length} of ${state.models.length} models ran` +
    failed.map((m) => `; ${m.name} failed: ${m.error}`).join("");
  if (failed.length) status.className = "error";
  document.getElementById("setup").textContent =
    `onnxruntime-web ${state.ort_version}, WebAssembly, ${state.threads} thread(s), cross-origin isolated: ` +
    `${state.cross_origin_isolated}, timer resolution ${(state.timer_resolution_ms * 1e3).toFixed(1)} us`;
  const rows = [["model", "batch", "median us / call", "calls per sample", "load ms"]];
  for (const m of state.models) {
    for (const b of m.batches) {
      rows.push([m.name, b.batch, (median(b.times_ms.slice(1 + state.warmup)) * 1e3).toFixed(1), b.calls_per_sample, m.load_ms.toFixed(1)]);
    }
  }
  document.getElementById("latency").innerHTML = rows
    .map((r, i) => `<tr>${r.map((c) => (i ? `<td>${c}</td>` : `<th>${c}</th>`)).join("")}</tr>`).join("");
  const outputs = document.getElementById("outputs");
  for (const m of state.models.filter((m) => !m.error)) {
    const b = m.batches[m.batches.length - 1];
    const dOut = b.dims[1];
    const lines = [];
    for (let i = 0; i < Math.min(SHOWN_ROWS, b.dims[0]); i++) {
      lines.push(b.data.slice(i * dOut, (i + 1) * dOut).map((v) => v.toFixed(3).padStart(8)).join(" "));
    }
    const block = document.createElement("div");
    block.innerHTML = `<p><code>${m.name}</code>, batch ${b.batch}:</p>`;
    const pre = document.createElement("pre");
    pre.textContent = lines.join("\n");
    block.appendChild(pre);
    outputs.appendChild(block);
  }
}

main().then(
  () => { state.status = "done"; show(); },
  (err) => { Object.assign(state, { status: "error", error: String(err?.message ?? err) }); show(); },
);
