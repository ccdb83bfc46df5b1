// The dashboard's replay worker (a module worker, same origin: no blob: URL for a CSP to refuse).
// It runs the dashboard's own wasm: the page's first message names the wasm-bindgen module and
// the wasm it loaded; their start function sees no window and serves replays instead of the app.
self.onmessage = (event) => {
  self.onmessage = null;
  const { glue, wasm } = event.data;
  import(glue)
    .then((module) => module.default({ module_or_path: wasm }))
    .catch((error) => self.postMessage({ failed: String(error) }));
};
