// srgraph's train step in onnxruntime-web. Message in: {type: 'start', trainStep, template
// (ArrayBuffers), pairs: [{hr, lr}] | null, batches: Float32Array | null, validation: {hr, lr} | null,
// config: {scale, patch, batch, steps, learningRate, seed, validateEvery, threads}}; {type: 'stop'}
// ends the run after the current step. Out: {type: 'step'}, {type: 'validation'}, then
// {type: 'done', model: Uint8Array (the trained training-form .onnx), ...} or {type: 'error'}.
//
// The step graph's parameters, Adam moments and buffers are inputs whose defaults are the
// initial values (ONNX's overridable initialisers): the first step runs on the defaults, and
// every later one is fed the `X.new` outputs of the step before.
import { loadRuntime, ORT_WEB_VERSION } from './runtime.js';
import { readModel, liftInitializers, withInitializers } from './onnx.js';
import { sampleBatch } from './train.js';
import { psnrY, bicubicUp } from './pictures.js';

let stopping = false;

self.onmessage = async (e) => {
  if (e.data.type === 'stop') {
    stopping = true;
    return;
  }
  try {
    self.postMessage(await train(e.data));
  } catch (err) {
    self.postMessage({ type: 'error', message: String((err && err.message) || err) });
  }
};


async function train({ trainStep, template, pairs, batches, validation, config }) {
  const { scale, patch, batch, steps, learningRate, seed, validateEvery } = config;
  // Training runs on WASM: its kernels are the ones the parity with native ONNX Runtime is tested on.
  const rt = await loadRuntime({ backend: 'wasm', threads: config.threads });
  // The state: every input the step updates (`X` with an output `X.new`), lifted out of the
  // initialisers with its initial value, since onnxruntime-web feeds only plain inputs.
  const stepModel = readModel(trainStep);
  const stateNames = stepModel.outputs.map((o) => o.name).filter((n) => n.endsWith('.new')).map((n) => n.slice(0, -4));
  if (!stateNames.length || !stepModel.outputs.some((o) => o.name === 'loss')) {
    throw new Error('not an srgraph train step: it has no loss and no X.new outputs (build it with `srgraph build --train`)');
  }
  const lifted = liftInitializers(trainStep, new Set(stateNames));
  const session = await rt.ort.InferenceSession.create(lifted.bytes, { executionProviders: ['wasm'] });
  let state = {};
  for (const [n, v] of lifted.values) state[n] = new rt.ort.Tensor('float32', v, stepModel.initializers.find((t) => t.name === n).dims);
  // The inference graph (training form) for validation, its parameters lifted the same way.
  const templateModel = readModel(template);
  const params = new Set(templateModel.initializers.map((t) => t.name).filter((n) => lifted.values.has(n)));
  const infer = await rt.ort.InferenceSession.create(liftInitializers(template, params).bytes, { executionProviders: ['wasm'] });
  const lrSide = patch / scale;
  const lrSize = batch * 3 * lrSide * lrSide;
  const hrSize = batch * 3 * patch * patch;
  if (batches && batches.length < steps * (lrSize + hrSize)) {
    throw new Error(`the fixed batches hold ${Math.floor(batches.length / (lrSize + hrSize))} steps, fewer than ${steps}`);
  }
  const losses = [];
  const validations = [];
  const start = performance.now();
  let done = 0;
  const validate = async (step) => {
    if (!validation) return;
    const feeds = { [templateModel.dataInputs[0].name]: toTensor(rt.ort, validation.lr) };
    for (const n of params) feeds[n] = state[n];
    const out = await infer.run(feeds);
    const sr = fromTensor(out[infer.outputNames[0]]);
    const psnr = psnrY(sr, validation.hr, scale);
    const bicubic = psnrY(bicubicUp(validation.lr, scale), validation.hr, scale);
    validations.push({ step, psnr, bicubic });
    self.postMessage({ type: 'validation', step, psnr, bicubic });
  };
  for (let k = 0; k < steps && !stopping; k++) {
    let lr;
    let hr;
    if (batches) {
      const at = k * (lrSize + hrSize);
      lr = batches.subarray(at, at + lrSize);
      hr = batches.subarray(at + lrSize, at + lrSize + hrSize);
    } else ({ lr, hr } = sampleBatch(pairs, { scale, patch, batch, seed }, k));
    const feeds = {
      lr: new rt.ort.Tensor('float32', lr, [batch, 3, lrSide, lrSide]),
      hr: new rt.ort.Tensor('float32', hr, [batch, 3, patch, patch]),
      learning_rate: new rt.ort.Tensor('float32', Float32Array.of(learningRate), []),
      step: new rt.ort.Tensor('float32', Float32Array.of(k + 1), []),
      ...state,
    };
    const out = await session.run(feeds);
    const next = {};
    for (const n of stateNames) next[n] = out[`${n}.new`];
    state = next;
    const loss = out.loss.data[0];
    losses.push(loss);
    done = k + 1;
    self.postMessage({ type: 'step', step: done, loss, seconds: (performance.now() - start) / 1000 });
    if (validateEvery && done % validateEvery === 0) await validate(done);
  }
  if (validation && (!validations.length || validations[validations.length - 1].step !== done)) await validate(done);
  const values = new Map();
  for (const n of stateNames) if (params.has(n)) values.set(n, new Float32Array(state[n].data));
  const last = validations[validations.length - 1];
  const model = withInitializers(template, values, {
    graph: 'training-form',
    training_steps: String(done),
    trained_in: `onnxruntime-web ${ORT_WEB_VERSION} (${rt.backend}, ${rt.threads} threads), srgraph's page`,
    ...(last ? { validation: validation.name || 'the first picture', validation_psnr_y: last.psnr.toFixed(4), bicubic_psnr_y: last.bicubic.toFixed(4) } : {}),
  });
  return { type: 'done', model, losses, validations, steps: done, seconds: (performance.now() - start) / 1000, threads: rt.threads };
}

function toTensor(ort, p) {
  const plane = p.width * p.height;
  const x = new Float32Array(3 * plane);
  for (let i = 0; i < plane; i++) {
    x[i] = p.rgb[i * 3];
    x[plane + i] = p.rgb[i * 3 + 1];
    x[2 * plane + i] = p.rgb[i * 3 + 2];
  }
  return new ort.Tensor('float32', x, [1, 3, p.height, p.width]);
}

function fromTensor(t) {
  const [, , h, w] = t.dims;
  const plane = h * w;
  const rgb = new Uint8Array(plane * 3);
  for (let i = 0; i < plane; i++) {
    for (let k = 0; k < 3; k++) rgb[i * 3 + k] = Math.min(255, Math.max(0, Math.round(t.data[k * plane + i])));
  }
  return { width: w, height: h, rgb };
}
