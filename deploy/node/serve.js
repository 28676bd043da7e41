#!/usr/bin/env node
// Serve predict_net.onnx with ONNX Runtime for Node.js: the deploy half of the Caffe2 story,
// with no Python and no training framework anywhere in the process.
//
//   node serve.js MODEL.onnx INPUT.json [--repeat K] [--threads T]
//
// INPUT.json: {"shape": [N, D_in], "data": [... N*D_in numbers, row-major ...]}.
// Prints one JSON line: {"dims": [N, D_out], "data": [...], "times_ms": [...], "load_ms": L}; with
// --repeat K the model runs K more times and times_ms holds each run's wall time (after one warm-up
// run); load_ms is the session's creation from the file.
"use strict";

const fs = require("fs");
const ort = require("onnxruntime-node");

function parseArgs(argv) {
  const args = { positional: [], repeat: 0, threads: 1 };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--repeat") args.repeat = Number(argv[++i]);
    else if (argv[i] === "--threads") args.threads = Number(argv[++i]);
    else args.positional.push(argv[i]);
  }
  if (args.positional.length !== 2 || !(args.repeat >= 0) || !(args.threads >= 1)) {
    throw new Error("usage: node serve.js MODEL.onnx INPUT.json [--repeat K] [--threads T]");
  }
  return args;
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const [modelPath, inputPath] = args.positional;
  const input = JSON.parse(fs.readFileSync(inputPath, "utf8"));
  const loadStart = process.hrtime.bigint();
  const session = await ort.InferenceSession.create(modelPath, {
    intraOpNumThreads: args.threads,
    interOpNumThreads: args.threads,
  });
  const loadMs = Number(process.hrtime.bigint() - loadStart) / 1e6;
  const elemType = session.inputMetadata?.[0]?.type === "float64" ? "float64" : "float32";
  const Typed = elemType === "float64" ? Float64Array : Float32Array;
  const feeds = { [session.inputNames[0]]: new ort.Tensor(elemType, Typed.from(input.data), input.shape) };

  const outputs = await session.run(feeds);
  const y = outputs[session.outputNames[0]];
  const timesMs = [];
  for (let k = 0; k < args.repeat; k++) {
    const start = process.hrtime.bigint();
    await session.run(feeds);
    timesMs.push(Number(process.hrtime.bigint() - start) / 1e6);
  }
  process.stdout.write(JSON.stringify({ dims: y.dims, data: Array.from(y.data), times_ms: timesMs, load_ms: loadMs }) + "\n");
}

main().catch((err) => {
  process.stderr.write(`serve.js: ${err.message}\n`);
  process.exit(1);
});
