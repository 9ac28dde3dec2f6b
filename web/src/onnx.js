// Reading and rewriting ONNX files in the page, with no protobuf library: an ONNX file
// is a protobuf ModelProto, and the page needs only a few of its fields (metadata, the
// graph's inputs and nodes for the receptive field, initialisers to overwrite).
//
// Field numbers are onnx.proto's (ModelProto.graph = 7, metadata_props = 14;
// GraphProto.node = 1, initializer = 5, input = 11, output = 12; TensorProto.dims = 1,
// data_type = 2, name = 8, raw_data = 9; NodeProto.input = 1, op_type = 4, attribute = 5).

const utf8 = new TextDecoder();
const utf8Encode = new TextEncoder();

// Each field of a message: {field, wire, value (number or BigInt), start, end, body: [start, end) for LEN}.
function* fields(bytes, start = 0, end = bytes.length) {
  let p = start;
  const varint = () => {
    let result = 0n;
    let shift = 0n;
    for (;;) {
      if (p >= end) throw new Error('truncated protobuf (varint runs past the end)');
      const b = bytes[p++];
      result |= BigInt(b & 0x7f) << shift;
      if (!(b & 0x80)) return result;
      shift += 7n;
      if (shift > 70n) throw new Error('malformed protobuf (varint too long)');
    }
  };
  while (p < end) {
    const fieldStart = p;
    const key = Number(varint());
    const field = key >>> 3;
    const wire = key & 7;
    let value;
    let body;
    if (wire === 0) value = varint();
    else if (wire === 1) { body = [p, p + 8]; p += 8; }
    else if (wire === 5) { body = [p, p + 4]; p += 4; }
    else if (wire === 2) {
      const len = Number(varint());
      body = [p, p + len];
      p += len;
    } else throw new Error(`unsupported protobuf wire type ${wire}`);
    if (p > end) throw new Error('truncated protobuf (a field runs past the end)');
    yield { field, wire, value, start: fieldStart, end: p, body };
  }
}

const text = (bytes, f) => utf8.decode(bytes.subarray(f.body[0], f.body[1]));

function int64s(bytes, f) {
  if (f.wire === 0) return [Number(BigInt.asIntN(64, f.value))];
  // Packed: varints one after another.
  const out = [];
  let p = f.body[0];
  while (p < f.body[1]) {
    let result = 0n;
    let shift = 0n;
    for (;;) {
      const b = bytes[p++];
      result |= BigInt(b & 0x7f) << shift;
      if (!(b & 0x80)) break;
      shift += 7n;
    }
    out.push(Number(BigInt.asIntN(64, result)));
  }
  return out;
}

function valueInfo(bytes, f) {
  const info = { name: '', dims: [], elemType: 0 };
  for (const g of fields(bytes, f.body[0], f.body[1])) {
    if (g.field === 1) info.name = text(bytes, g);
    if (g.field !== 2) continue;
    for (const t of fields(bytes, g.body[0], g.body[1])) {
      if (t.field !== 1) continue; // TypeProto.tensor_type
      for (const u of fields(bytes, t.body[0], t.body[1])) {
        if (u.field === 1) info.elemType = Number(u.value);
        if (u.field !== 2) continue; // shape
        for (const d of fields(bytes, u.body[0], u.body[1])) {
          if (d.field !== 1) continue;
          let dim = null;
          for (const v of fields(bytes, d.body[0], d.body[1])) {
            if (v.field === 1) dim = Number(v.value);
            if (v.field === 2) dim = text(bytes, v);
          }
          info.dims.push(dim);
        }
      }
    }
  }
  return info;
}

function node(bytes, f) {
  const n = { opType: '', inputs: [], attributes: {} };
  for (const g of fields(bytes, f.body[0], f.body[1])) {
    if (g.field === 1) n.inputs.push(text(bytes, g));
    if (g.field === 4) n.opType = text(bytes, g);
    if (g.field === 5) {
      let name = '';
      const ints = [];
      for (const a of fields(bytes, g.body[0], g.body[1])) {
        if (a.field === 1) name = text(bytes, a);
        if (a.field === 8) ints.push(...int64s(bytes, a));
      }
      n.attributes[name] = ints;
    }
  }
  return n;
}

function tensorHeader(bytes, f) {
  const t = { name: '', dims: [], dataType: 0, raw: null };
  for (const g of fields(bytes, f.body[0], f.body[1])) {
    if (g.field === 1) t.dims.push(...int64s(bytes, g));
    if (g.field === 2) t.dataType = Number(g.value);
    if (g.field === 8) t.name = text(bytes, g);
    if (g.field === 9) t.raw = g.body;
  }
  return t;
}

/// What the page needs of an ONNX file.
export function readModel(buffer) {
  const bytes = new Uint8Array(buffer);
  const model = { metadata: {}, inputs: [], outputs: [], nodes: [], initializers: [] };
  let sawGraph = false;
  for (const f of fields(bytes)) {
    if (f.field === 14 && f.wire === 2) {
      let key = '';
      let value = '';
      for (const g of fields(bytes, f.body[0], f.body[1])) {
        if (g.field === 1) key = text(bytes, g);
        if (g.field === 2) value = text(bytes, g);
      }
      model.metadata[key] = value;
    }
    if (f.field !== 7 || f.wire !== 2) continue;
    sawGraph = true;
    for (const g of fields(bytes, f.body[0], f.body[1])) {
      if (g.field === 1) model.nodes.push(node(bytes, g));
      if (g.field === 5) model.initializers.push(tensorHeader(bytes, g));
      if (g.field === 11) model.inputs.push(valueInfo(bytes, g));
      if (g.field === 12) model.outputs.push(valueInfo(bytes, g));
    }
  }
  if (!sawGraph) throw new Error('not an ONNX model: no graph in it');
  const initialised = new Set(model.initializers.map((t) => t.name));
  // Inputs with an initialiser are overridable constants (srgraph's parameters), not data.
  model.dataInputs = model.inputs.filter((i) => !initialised.has(i.name));
  return model;
}

/// The float32 values of an initialiser held as raw_data.
export function initializerValues(buffer, t) {
  if (t.dataType !== 1 || !t.raw) throw new Error(`${t.name}: not a float32 tensor stored as raw data`);
  return new Float32Array(buffer.slice(t.raw[0], t.raw[1]));
}

/// How far an output pixel sees, in input pixels: srgraph's `receptive_radius`
/// (src/infer/signature.rs), the margin tiles need to equal the whole picture.
export function receptiveRadius(model) {
  const weights = new Map(model.initializers.map((t) => [t.name, t]));
  let radius = 0;
  for (const n of model.nodes) {
    let reach = 0;
    if (['Conv', 'ConvTranspose', 'MaxPool', 'AveragePool', 'LpPool'].includes(n.opType)) {
      let kernel = n.attributes.kernel_shape;
      if (!kernel || !kernel.length) {
        const w = weights.get(n.inputs[1]);
        kernel = w ? w.dims.slice(2) : [3, 3];
      }
      const dilations = n.attributes.dilations || [];
      const pads = n.attributes.pads || [];
      for (let i = 0; i < kernel.length; i++) {
        const extent = Math.max(kernel[i] - 1, 0) * (dilations[i] ?? 1);
        const half = Math.floor((extent + 1) / 2);
        const pad = Math.max(pads[i] ?? 0, pads[i + kernel.length] ?? 0);
        reach = Math.max(reach, half, pad, 0);
      }
    } else if (n.opType === 'Resize' || n.opType === 'Upsample') {
      reach = 2; // cubic interpolation looks two pixels each way
    }
    radius += reach;
  }
  return radius;
}

// ---- writing ----

function varintBytes(n) {
  let v = BigInt(n);
  const out = [];
  do {
    let b = Number(v & 0x7fn);
    v >>= 7n;
    if (v) b |= 0x80;
    out.push(b);
  } while (v);
  return out;
}

function concat(parts) {
  const len = parts.reduce((a, p) => a + p.length, 0);
  const out = new Uint8Array(len);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

const lenField = (field, body) => concat([Uint8Array.from(varintBytes((field << 3) | 2)), Uint8Array.from(varintBytes(body.length)), body]);
const varintField = (field, n) => Uint8Array.from([...varintBytes(field << 3), ...varintBytes(n)]);

function floatTensor(name, dims, values) {
  const packedDims = Uint8Array.from(dims.flatMap((d) => varintBytes(d)));
  return concat([
    lenField(1, packedDims),
    varintField(2, 1),
    lenField(8, utf8Encode.encode(name)),
    lenField(9, new Uint8Array(values.buffer, values.byteOffset, values.byteLength)),
  ]);
}

/// A copy of the ONNX file with the float32 initialisers named in `values` (a Map of
/// name -> Float32Array) replaced, and `metadata` (an object) set over the file's own.
/// Every other byte is kept as it was.
export function withInitializers(buffer, values, metadata = {}) {
  return rewrite(buffer, values, new Set(), metadata);
}

/// The file with the initialisers named in `names` taken out, so that they are plain
/// inputs, and their values (a Map of name -> Float32Array). onnxruntime-web lets a page
/// feed only inputs without an initialiser (ONNX Runtime's session lists no others).
export function liftInitializers(buffer, names) {
  const model = readModel(buffer);
  const values = new Map();
  for (const t of model.initializers) if (names.has(t.name)) values.set(t.name, initializerValues(buffer, t));
  for (const n of names) if (!values.has(n)) throw new Error(`the model has no initialiser named ${n}`);
  return { bytes: rewrite(buffer, new Map(), names, {}), values };
}

function rewrite(buffer, values, drop, metadata) {
  const bytes = new Uint8Array(buffer);
  const model = readModel(buffer);
  const dims = new Map(model.initializers.map((t) => [t.name, t.dims]));
  for (const [name, v] of values) {
    if (!dims.has(name)) throw new Error(`the model has no initialiser named ${name}`);
    const n = dims.get(name).reduce((a, b) => a * b, 1);
    if (v.length !== n) throw new Error(`${name}: ${v.length} values for a tensor of ${n}`);
  }
  const meta = { ...model.metadata, ...metadata };
  const parts = [];
  for (const f of fields(bytes)) {
    if (f.field === 14 && f.wire === 2) continue; // rewritten below
    if (f.field !== 7 || f.wire !== 2) {
      parts.push(bytes.subarray(f.start, f.end));
      continue;
    }
    const graph = [];
    for (const g of fields(bytes, f.body[0], f.body[1])) {
      if (g.field === 5) {
        const t = tensorHeader(bytes, g);
        if (drop.has(t.name)) continue;
        if (values.has(t.name)) {
          graph.push(lenField(5, floatTensor(t.name, t.dims, values.get(t.name))));
          continue;
        }
      }
      graph.push(bytes.subarray(g.start, g.end));
    }
    parts.push(lenField(7, concat(graph)));
  }
  for (const [key, value] of Object.entries(meta)) {
    parts.push(lenField(14, concat([lenField(1, utf8Encode.encode(key)), lenField(2, utf8Encode.encode(String(value)))])));
  }
  return concat(parts);
}
