// Starts the demo rooms' Web Worker: wasm-bindgen's script for mock-worker, then its module.
// (trunk's own loader shim passes the module's path the way wasm-bindgen no longer wants.)
importScripts('./mock-worker.js');
wasm_bindgen({ module_or_path: './mock-worker_bg.wasm' });
