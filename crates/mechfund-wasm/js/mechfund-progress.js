// mechfund's JS package, entry module: `import "./mechfund-progress.js"` defines
// <mechfund-progress> at once, then instantiates the WebAssembly; the element forwards to the
// Rust implementation (src/element.rs) once that is ready. If instantiation fails — most often
// a page Content-Security-Policy without 'wasm-unsafe-eval' — every <mechfund-progress>, now or
// later on the page, shows why (part="error", data-status="error", a `mechfund-error` event
// with detail {code, message}) instead of staying blank.
//
// It also re-exports the JS API, and `init()` returns the instantiation it started, so
// `import init, { replayLog } from "./mechfund-progress.js"; await init();` works as with
// mechfund_wasm.js. `cargo xtask wasm` copies this file into the package.
import wasmInit from "./mechfund_wasm.js";

export * from "./mechfund_wasm.js";

const TAG = "mechfund-progress";
// The attributes whose changes reload the element (OBSERVED in src/element.rs).
const OBSERVED = ["src", "api", "ddc", "mech", "refresh", "now"];
const WASM = new URL("mechfund_wasm_bg.wasm", import.meta.url);
const STYLE = new URL("mechfund-progress.css", import.meta.url);

let rust = null; // {connected, disconnected, changed} once the WebAssembly runs
let failure = null; // {code, message} once it cannot
const waiting = new Set(); // connected elements, until one of the two

function showFailure(element) {
  const root = element.shadowRoot || element.attachShadow({ mode: "open" });
  const style = document.createElement("link");
  style.rel = "stylesheet";
  style.href = STYLE.href;
  const card = document.createElement("div");
  card.className = "card";
  card.setAttribute("part", "card");
  const error = document.createElement("div");
  error.className = "error";
  error.setAttribute("part", "error");
  error.setAttribute("role", "alert");
  error.textContent = failure.message;
  card.append(error);
  root.replaceChildren(style, card);
  element.setAttribute("data-status", "error");
  element.setAttribute("aria-busy", "false");
  element.dispatchEvent(new CustomEvent("mechfund-error", {
    bubbles: true, composed: true, detail: { code: failure.code, message: failure.message },
  }));
}

class MechfundProgress extends HTMLElement {
  static get observedAttributes() { return OBSERVED; }

  // Called by the Rust side when the WebAssembly starts (js/element.js's defineElement).
  static attach(connected, disconnected, changed) {
    if (rust || failure) return;
    rust = { connected, disconnected, changed };
    const elements = [...waiting];
    waiting.clear();
    for (const element of elements) rust.connected(element);
  }

  connectedCallback() {
    if (rust) return rust.connected(this);
    waiting.add(this);
    if (failure) showFailure(this);
    else this.setAttribute("data-status", "loading");
  }

  disconnectedCallback() {
    if (rust) return rust.disconnected(this);
    waiting.delete(this);
  }

  attributeChangedCallback(name, oldValue, newValue) {
    if (rust && oldValue !== newValue) rust.changed(this);
  }
}

if (typeof customElements !== "undefined" && !customElements.get(TAG)) {
  customElements.define(TAG, MechfundProgress);
}

// WebAssembly refused by the page's CSP is reported twice: the CompileError's message and a
// `securitypolicyviolation` event (script-src, blocked URI "wasm-eval"). Either one is enough.
const violations = [];
const onViolation = (event) => violations.push(event);
if (typeof document !== "undefined") document.addEventListener("securitypolicyviolation", onViolation);

// The page's script-src (or default-src) with 'wasm-unsafe-eval' added, for the message.
function fixedScriptSrc(policy) {
  const directives = (policy || "").split(";").map((d) => d.trim()).filter(Boolean);
  const named = (name) => directives.find((d) => d.split(/\s+/)[0] === name);
  const current = named("script-src") || (named("default-src") || "").replace(/^default-src/, "script-src");
  return current ? `${current} 'wasm-unsafe-eval'` : "script-src 'self' 'wasm-unsafe-eval'";
}

async function classify(error) {
  await new Promise((resolve) => setTimeout(resolve, 0)); // violation events are queued as tasks
  const text = String((error && error.message) || error);
  const wasmEval = violations.find((v) => v.blockedURI === "wasm-eval"
    || ((v.effectiveDirective === "script-src" || v.effectiveDirective === "wasm-eval")
      && /wasm|eval/i.test(v.blockedURI || "")));
  if (wasmEval || (/Content.Security.Policy/i.test(text) && /WebAssembly|wasm/i.test(text))) {
    const fix = fixedScriptSrc(wasmEval && wasmEval.originalPolicy);
    return {
      code: "csp",
      message: "This page's Content-Security-Policy does not allow WebAssembly, which <mechfund-progress> " +
        "needs: its script-src lacks 'wasm-unsafe-eval'. Fix: add 'wasm-unsafe-eval' to script-src in the " +
        `page's Content-Security-Policy header, e.g. ${fix}`,
    };
  }
  const connect = violations.find((v) => v.effectiveDirective === "connect-src");
  if (connect) {
    const origin = new URL(WASM).origin;
    return {
      code: "csp",
      message: `This page's Content-Security-Policy (connect-src) does not allow fetching ${WASM.href}. ` +
        `Fix: add ${origin} to connect-src in the page's Content-Security-Policy header.`,
    };
  }
  return { code: "network", message: `Could not start mechfund's WebAssembly (${WASM.href}): ${text}` };
}

async function start() {
  let response;
  try {
    response = await fetch(WASM);
  } catch (error) {
    throw await classify(error);
  }
  if (!response.ok) {
    throw {
      code: "network",
      message: `Could not load mechfund's WebAssembly: HTTP ${response.status} for ${WASM.href}. Copy the ` +
        "whole package folder (mechfund-progress.js, mechfund_wasm.js, mechfund_wasm_bg.wasm, snippets/).",
    };
  }
  try {
    return await wasmInit({ module_or_path: response });
  } catch (error) {
    throw await classify(error);
  }
}

const instantiated = start().then(
  (output) => {
    document.removeEventListener("securitypolicyviolation", onViolation);
    return output;
  },
  (reason) => {
    document.removeEventListener("securitypolicyviolation", onViolation);
    failure = reason;
    console.error(`<mechfund-progress>: ${failure.message}`);
    for (const element of waiting) showFailure(element);
    throw Object.assign(new Error(failure.message), { code: failure.code });
  },
);
instantiated.catch(() => {}); // reported in the elements; init() callers still see the rejection

/** The instantiation started at import: resolves when the JS API is usable. */
export default function init() {
  return instantiated;
}
