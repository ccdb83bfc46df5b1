//! Where a log comes from: a picked or dropped file, a URL, pasted lines, the bundled samples,
//! or the log `mechfund serve` exports (and streams).

use crate::api;

/// The bundled sample logs (`tests/samples`, copied into `dist/samples` by Trunk): a small
/// community part-way to level 10, and a longer log whose history was rewritten (diagnostics).
pub const SAMPLE_URL: &str = "samples/ddc-small.jsonl";
pub const SAMPLE_MIXED_URL: &str = "samples/ddc-mixed-1500.jsonl";
/// What `mechfund serve` exports; tried quietly on a first visit.
#[must_use]
pub fn server_log(mech: &str) -> String {
    format!("{}/mechs/{}/events.jsonl", api::API, api::encode(mech))
}
/// The live stream of what `mechfund serve` appends to `mech`'s log after seq `after`.
#[must_use]
pub fn stream_url(mech: &str, after: u64) -> String {
    format!("{}/mechs/{}/events/stream?after_seq={after}", api::API, api::encode(mech))
}
/// The rules `mechfund serve` replays with; tried quietly when the page names none.
pub const SERVER_RULES: &str = "api/v1/rules";

/// Where a log comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum Source {
    File(web_sys::File),
    Url(String),
    Text(String),
}

impl Source {
    /// How the page names the log while it loads and once it shows.
    #[must_use]
    pub fn name(&self) -> String {
        match self {
            Source::File(file) => file.name(),
            Source::Url(url) => url.clone(),
            Source::Text(_) => "the pasted log".to_owned(),
        }
    }
}
