//! mechfund-web: the dashboard. A Yew app that replays an exported events.jsonl entirely in the
//! browser with `mechfund-core` (no server needed), shows the mech's progress, history and
//! diagnostics, and previews goals for hypothetical member counts (the what-if calculator).
//!
//! It is not the embeddable widget (`mechfund-wasm`'s `<mechfund-progress>`) and holds no domain
//! rules of its own: every number comes from the core. Built by Trunk from the repository's
//! `index.html` into `dist/`.

mod analysis;
mod api;
mod app;
mod browser;
mod components;
mod format;
mod live;
mod loading;
mod replay_job;
mod row_text;
mod stage;
mod state;
mod storage;
mod worker;

fn main() {
    // The same module runs the replay worker (`web/worker/replay-worker.js`): no window there.
    if web_sys::window().is_none() {
        worker::serve::serve();
        return;
    }
    worker::client::start();
    yew::Renderer::<app::App>::new().render();
}
