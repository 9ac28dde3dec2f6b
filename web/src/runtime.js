// onnxruntime-web, loaded in a worker from the files `srgraph serve` puts under /ort/
// (the npm package's dist folder): no CDN, nothing fetched from outside 127.0.0.1.

export const ORT_WEB_VERSION = '1.30.0';

/// {ort, backend}: WebGPU when asked for ('auto' or 'webgpu') and the browser gives an
/// adapter, WASM otherwise. `threads`: WASM threads (they need the cross-origin isolation
/// `srgraph serve` sets up; without it one thread).
export async function loadRuntime({ backend = 'auto', threads } = {}) {
  let chosen = 'wasm';
  if (backend !== 'wasm' && self.navigator && self.navigator.gpu) {
    try {
      if (await self.navigator.gpu.requestAdapter()) chosen = 'webgpu';
    } catch {
      // no adapter: WASM
    }
  }
  if (backend === 'webgpu' && chosen !== 'webgpu') throw new Error('WebGPU was asked for, but this browser gives no WebGPU adapter');
  const file = chosen === 'webgpu' ? 'ort.webgpu.min.mjs' : 'ort.wasm.min.mjs';
  const ort = await import(new URL(`/ort/${file}`, self.location.origin).href);
  // An absolute URL ending in '/': relative ones are resolved against the module, not the page.
  ort.env.wasm.wasmPaths = new URL('/ort/', self.location.origin).href;
  const cores = (self.navigator && self.navigator.hardwareConcurrency) || 1;
  ort.env.wasm.numThreads = self.crossOriginIsolated ? threads || Math.min(4, cores) : 1;
  return { ort, backend: chosen, threads: ort.env.wasm.numThreads };
}
