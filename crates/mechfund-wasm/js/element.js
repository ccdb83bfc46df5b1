// The JS side of <mechfund-progress> that the Rust element (src/element.rs) imports; wasm-bindgen
// copies it into the package's snippets/. The entry module mechfund-progress.js is separate:
// it defines the element before the WebAssembly exists.

// The page's recent CSP violations: a fetch the page's connect-src blocks fails exactly like a
// CORS failure or a network error (a TypeError), and only this event tells them apart.
const violations = [];
if (typeof document !== "undefined") {
  document.addEventListener("securitypolicyviolation", (event) => {
    violations.push({ directive: event.effectiveDirective, uri: event.blockedURI, policy: event.originalPolicy });
    if (violations.length > 20) violations.shift();
  });
}

// Hands the Rust callbacks to the class mechfund-progress.js defined (it forwards from then
// on), or defines a class that forwards to them (the package used without that module).
export function defineElement(tag, observed, connected, disconnected, changed) {
  const existing = customElements.get(tag);
  if (existing) {
    if (typeof existing.attach === "function") existing.attach(connected, disconnected, changed);
    return;
  }
  class MechfundProgress extends HTMLElement {
    static get observedAttributes() { return observed; }
    connectedCallback() { connected(this); }
    disconnectedCallback() { disconnected(this); }
    attributeChangedCallback(name, oldValue, newValue) { if (oldValue !== newValue) changed(this); }
  }
  customElements.define(tag, MechfundProgress);
}

// A URL as the browser resolves it against the page, for messages.
export function absoluteUrl(url) {
  try { return new URL(url, document.baseURI).href; } catch { return url; }
}

const origin = (url) => {
  try { return new URL(url, document.baseURI).origin; } catch { return ""; }
};
const tick = () => new Promise((resolve) => setTimeout(resolve, 0));

// The connect-src violation that blocked a request to `url`, if any.
function blocked(url) {
  return violations.find((v) => v.directive === "connect-src" && origin(v.uri) === origin(url));
}

// The page policy's connect-src with `source` added (or a new connect-src), for the message.
function allowing(policy, source) {
  const directives = (policy || "").split(";").map((d) => d.trim());
  const current = directives.find((d) => d.split(/\s+/)[0] === "connect-src");
  return current ? `${current} ${source}` : `connect-src 'self' ${source}`;
}

// Why `fetch(url)` failed with `error`: [code, message] with the fix (spec §3.5's codes).
async function fetchFailure(url, what, error) {
  const page = location.origin;
  const target = origin(url);
  await tick(); // the violation event is queued as a task
  let csp = blocked(url);
  let readable = false;
  if (!csp && target !== page) {
    // An opaque request succeeds where only CORS stood in the way.
    readable = await fetch(url, { mode: "no-cors", cache: "no-store" }).then(() => true, () => false);
    await tick();
    csp = blocked(url);
  }
  if (csp) {
    return ["csp", `Could not fetch ${what} from ${url}: this page's Content-Security-Policy does not allow ` +
      `connections to ${target} (connect-src). Fix: allow it in the page's Content-Security-Policy header, ` +
      `e.g. ${allowing(csp.policy, target)}`];
  }
  if (readable) {
    return ["cors", `Could not read ${what} from ${url}: that server does not let this page (${page}) read its ` +
      `answers (CORS). Fix: the server must send Access-Control-Allow-Origin: ${page} — for a mechfund server, ` +
      `start it with mechfund serve --cors-origin ${page}`];
  }
  const reason = error && error.message ? error.message : String(error);
  return ["network", `Could not fetch ${what} from ${url}: ${reason}. Check the URL and that the server is up.`];
}

// GETs one [url, what, need] (revalidating any cached copy): its text, or null where `need`
// lets a failure pass (1: a 404, a missing file; 2: any failure).
async function getText([url, what, need], hint) {
  const absolute = absoluteUrl(url);
  let response;
  try {
    response = await fetch(absolute, { cache: "no-cache" });
  } catch (error) {
    if (need === 2) return null;
    throw await fetchFailure(absolute, what, error);
  }
  if ((need === 1 && response.status === 404) || (need === 2 && !response.ok)) return null;
  if (!response.ok) {
    const status = `${response.status} ${response.statusText}`.trim();
    throw ["http", `Could not load ${what}: HTTP ${status} for ${absolute}. ${hint}`.trim()];
  }
  try {
    return await response.text();
  } catch (error) {
    if (need === 2) return null;
    throw ["network", `Could not read ${what} from ${absolute}: ${error.message || error}`];
  }
}

// GETs every [url, what, need] of `requests` at once: resolves to their texts in order; rejects
// with [code, message] for the first failure that counts — `http` for an error status (ending
// in `hint`), else why the request failed (csp, cors, network).
export function getTexts(requests, hint) {
  return Promise.all(requests.map((request) => getText(request, hint)));
}
