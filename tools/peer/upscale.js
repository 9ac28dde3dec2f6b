#!/usr/bin/env node
// Upscales a folder of LR PNGs with one UpscalerJS model, offline: the model's
// model.json and weights are read from its npm package in node_modules and run by
// TensorFlow.js under Node (the WebAssembly backend, or the pure-JS cpu one).
//
//   node upscale.js --package esrgan-slim --scale 2 --in LR/ --out SR/ [--backend wasm|cpu] [--report FILE.json]
//
// Each output is named as its input (NAME.png), the form `srgraph eval --upscaled`
// reads. The time of a picture runs from reading its file to writing its output,
// as `srgraph upscale` times one; the report holds every picture's seconds and the
// model's parameter count.
'use strict';

const fs = require('fs');
const path = require('path');
const tf = require('@tensorflow/tfjs');
require('@tensorflow/tfjs-backend-wasm');
const { PNG } = require('pngjs');

const USAGE =
  'usage: node upscale.js --package esrgan-slim|esrgan-medium|esrgan-thick|default-model --scale 2|3|4|8 ' +
  '--in LR_DIR --out SR_DIR [--backend wasm|cpu] [--report FILE.json]';

function parseArgs(argv) {
  const a = { backend: 'wasm' };
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i].replace(/^--/, '');
    if (!['package', 'scale', 'in', 'out', 'backend', 'report'].includes(key) || argv[i + 1] === undefined) {
      usage(`unknown or incomplete argument ${argv[i]}`);
    }
    a[key] = argv[i + 1];
  }
  for (const key of ['package', 'scale', 'in', 'out']) {
    if (!a[key]) usage(`--${key} is missing`);
  }
  a.scale = Number(a.scale);
  return a;
}

function usage(message) {
  console.error(`error: ${message}\n${USAGE}`);
  process.exit(2);
}

// The package's model definition for the scale: where its model.json is, the value
// ranges it takes and gives ([0, 255] for the RDN models, [0, 1] for the RRDN ones),
// and `setup`, which registers the custom layers an RRDN needs.
function modelDefinition(pkg, scale) {
  const dir = path.join(__dirname, 'node_modules', '@upscalerjs', pkg);
  if (!fs.existsSync(dir)) usage(`@upscalerjs/${pkg} is not installed in ${path.dirname(dir)} (run npm ci in ${__dirname})`);
  let definition;
  if (pkg === 'default-model') {
    definition = require(`@upscalerjs/${pkg}`);
    if (definition.scale !== scale) usage(`@upscalerjs/default-model is x${definition.scale} only`);
  } else {
    try {
      definition = require(`@upscalerjs/${pkg}/${scale}x`);
    } catch (e) {
      usage(`@upscalerjs/${pkg} has no x${scale} model`);
    }
  }
  return { ...definition, modelJson: path.join(dir, definition._internals.path) };
}

// A tf.io handler that reads model.json and its weight shards from disk.
function fileHandler(modelJson) {
  return {
    load: async () => {
      const json = JSON.parse(fs.readFileSync(modelJson, 'utf8'));
      const weightSpecs = [];
      const shards = [];
      for (const group of json.weightsManifest) {
        weightSpecs.push(...group.weights);
        for (const p of group.paths) shards.push(fs.readFileSync(path.join(path.dirname(modelJson), p)));
      }
      const weights = Buffer.concat(shards);
      return {
        modelTopology: json.modelTopology,
        format: json.format,
        generatedBy: json.generatedBy,
        convertedBy: json.convertedBy,
        weightSpecs,
        weightData: weights.buffer.slice(weights.byteOffset, weights.byteOffset + weights.byteLength),
      };
    },
  };
}

// One PNG through the model: RGB values scaled to the model's input range, its output
// scaled back to 0..255, rounded and clamped (alpha, if any, is dropped).
async function upscalePicture(model, definition, input, output) {
  const png = PNG.sync.read(fs.readFileSync(input));
  const { width: w, height: h } = png;
  const rgb = new Float32Array(w * h * 3);
  const inScale = definition.inputRange[1] / 255;
  for (let i = 0; i < w * h; i++) {
    for (let c = 0; c < 3; c++) rgb[i * 3 + c] = png.data[i * 4 + c] * inScale;
  }
  const sr = tf.tidy(() => model.predict(tf.tensor4d(rgb, [1, h, w, 3])));
  const [, H, W] = sr.shape;
  const values = await sr.data();
  sr.dispose();
  const out = new PNG({ width: W, height: H, colorType: 2 });
  const outScale = 255 / definition.outputRange[1];
  for (let i = 0; i < W * H; i++) {
    for (let c = 0; c < 3; c++) {
      out.data[i * 4 + c] = Math.min(255, Math.max(0, Math.round(values[i * 3 + c] * outScale)));
    }
    out.data[i * 4 + 3] = 255;
  }
  fs.writeFileSync(output, PNG.sync.write(out, { colorType: 2 }));
  return [w, h, W, H];
}

async function main() {
  const a = parseArgs(process.argv.slice(2));
  await tf.setBackend(a.backend);
  await tf.ready();
  const definition = modelDefinition(a.package, a.scale);
  if (definition.setup) definition.setup(tf);
  const model = await tf.loadLayersModel(fileHandler(definition.modelJson));
  const inputs = fs.readdirSync(a.in).filter((f) => f.toLowerCase().endsWith('.png')).sort();
  if (inputs.length === 0) usage(`no PNG pictures in ${a.in}`);
  fs.mkdirSync(a.out, { recursive: true });
  const seconds = [];
  for (const name of inputs) {
    const started = process.hrtime.bigint();
    const [w, h, W, H] = await upscalePicture(model, definition, path.join(a.in, name), path.join(a.out, name));
    const s = Number(process.hrtime.bigint() - started) / 1e9;
    seconds.push(s);
    console.log(`${name}: ${w}x${h} -> ${W}x${H}, ${s.toFixed(2)} s`);
  }
  const report = {
    package: `@upscalerjs/${a.package}`,
    scale: a.scale,
    architecture: definition.meta.architecture,
    params: model.countParams(),
    backend: tf.getBackend(),
    input_range: definition.inputRange,
    output_range: definition.outputRange,
    pictures: inputs,
    seconds,
  };
  console.log(`${report.package} x${a.scale} (${report.architecture}, ${report.params} parameters) on ${report.backend}`);
  if (a.report) fs.writeFileSync(a.report, JSON.stringify(report, null, 2) + '\n');
}

main().catch((e) => {
  console.error(`error: ${e.stack || e}`);
  process.exit(1);
});
