// Types of mechfund-progress.js, the package's entry module (copied next to it by `cargo xtask wasm`).
export * from "./mechfund_wasm.js";
import type { InitOutput } from "./mechfund_wasm.js";

/**
 * The instantiation the module started when imported: resolves once the JS API can be called;
 * rejects with an `Error` whose `code` is `"csp"` or `"network"` (every `<mechfund-progress>`
 * on the page shows the same message).
 */
export default function init(): Promise<InitOutput>;
