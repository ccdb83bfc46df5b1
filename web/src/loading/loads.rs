//! Starting a load: the source read into memory (with progress), handed to the replay worker
//! (or, without one, replayed here in slices), and the actions that report each step to the
//! app's state. A newer load wins: every action carries
//! its load's generation, and the reducer drops those of older ones.

use std::cell::Cell;
use std::rc::Rc;

use mechfund_core::{Now, ReplayOptions, Rules};
use wasm_bindgen_futures::spawn_local;
use yew::{UseReducerDispatcher, UseReducerHandle, hook, use_memo};

use super::source::{Source, server_log};
use crate::browser::{self, PageHost};
use crate::replay_job::{self, Progress};
use crate::state::action::Action;
use crate::state::model::{Bytes, Log, Model};
use crate::worker::client;

/// Starts loads; owns the generation counter so a newer load wins.
#[derive(Clone)]
pub struct Loads {
    dispatch: UseReducerDispatcher<Model>,
    generation: Rc<Cell<u64>>,
    rules: Rc<Rules>,
    now: Option<Now>,
}

impl PartialEq for Loads {
    fn eq(&self, other: &Loads) -> bool {
        Rc::ptr_eq(&self.generation, &other.generation) && self.rules == other.rules && self.now == other.now
    }
}

impl Loads {
    /// The same loads (same reducer, same counter) replayed with other `rules` at `now`: for
    /// the first load, which starts before the page has rendered with its rules.
    #[must_use]
    pub fn with(&self, rules: Rc<Rules>, now: Option<Now>) -> Loads {
        Loads { dispatch: self.dispatch.clone(), generation: Rc::clone(&self.generation), rules, now }
    }

    /// Reads `source` and replays `mech`. `quiet`: a failure returns to the first-visit screen.
    pub fn load(&self, source: Source, mech: String, quiet: bool) {
        self.start_load(source, mech, quiet, false);
    }

    /// Loads the server's log of `mech` (quietly: a page not served by mechfund, or an empty
    /// store, shows the first-visit screen) and follows its stream.
    pub fn load_server(&self, mech: String) {
        self.start_load(Source::Url(server_log(&mech)), mech, true, true);
    }

    fn start_load(&self, source: Source, mech: String, quiet: bool, live: bool) {
        let generation = self.generation.get() + 1;
        self.generation.set(generation);
        let what = source.name();
        self.dispatch.dispatch(Action::Start { generation, what: what.clone(), live });
        let this = self.clone();
        spawn_local(async move {
            let dispatch = this.dispatch.clone();
            let report: Rc<dyn Fn(Progress)> =
                Rc::new(move |progress| dispatch.dispatch(Action::Progress { generation, progress }));
            let bytes = read(source, &mech, &report).await;
            if live && bytes.is_ok() {
                this.dispatch.dispatch(Action::Server);
            }
            match bytes {
                Ok(bytes) => this.replay(generation, Rc::new(Log { name: what, bytes }), mech, quiet, !live).await,
                Err(message) if quiet => {
                    let _ = message;
                    this.dispatch.dispatch(Action::Idle { generation });
                }
                Err(message) => this.dispatch.dispatch(Action::Failed { generation, message }),
            }
        });
    }

    /// Replays the log already in memory for another mech.
    pub fn select_mech(&self, log: Rc<Log>, mech: String) {
        let generation = self.generation.get() + 1;
        self.generation.set(generation);
        self.dispatch.dispatch(Action::Start { generation, what: log.name.clone(), live: false });
        let this = self.clone();
        spawn_local(async move { this.replay(generation, log, mech, false, true).await });
    }

    /// Replays `log` for `mech`. `later`: the summary may come first and the rest (rows, chart)
    /// after it (not for a live load, whose stream extends the analysis on screen).
    async fn replay(&self, generation: u64, log: Rc<Log>, mech: String, quiet: bool, later: bool) {
        let dispatch = self.dispatch.clone();
        let report: Rc<dyn Fn(Progress)> =
            Rc::new(move |progress| dispatch.dispatch(Action::Progress { generation, progress }));
        let replayed = match &log.bytes {
            Bytes::Worker(held) => {
                browser::mark("mechfund replay in the worker");
                held.replay(&mech, &self.rules, self.now.as_ref(), later, Rc::clone(&report)).await
            }
            Bytes::Here(bytes) => {
                browser::mark("mechfund replay on the page");
                let mut host = PageHost { report: Rc::clone(&report), yields: true };
                let options = ReplayOptions {
                    mech: mech.clone(),
                    timeline: true,
                    now: self.now.clone(),
                    ..ReplayOptions::default()
                };
                replay_job::replay(bytes, &self.rules, options, &mut host).await.map_err(|strict| strict.to_string())
            }
        };
        match replayed {
            Ok(analysis) if !analysis.has_events() && quiet => {
                self.dispatch.dispatch(Action::Idle { generation });
                let _ = analysis;
            }
            Ok(analysis) => {
                // A log without events of the asked mech but with others: show the first other.
                if !analysis.has_events() && !analysis.mechs.is_empty() && !analysis.mechs.contains(&mech) {
                    let first = analysis.mechs[0].clone();
                    Box::pin(self.replay(generation, log, first, quiet, later)).await;
                    return;
                }
                let pending = analysis.summary_only;
                let loaded =
                    |analysis| Action::Loaded { generation, log: Rc::clone(&log), analysis, mech: mech.clone() };
                self.dispatch.dispatch(loaded(Rc::new(analysis)));
                if let (true, Bytes::Worker(held)) = (pending, &log.bytes) {
                    browser::mark("mechfund summary shown");
                    match held.whole(&self.rules, self.now.as_ref(), report).await {
                        Ok(analysis) => self.dispatch.dispatch(loaded(Rc::new(analysis))),
                        Err(message) => self.dispatch.dispatch(Action::Failed { generation, message }),
                    }
                }
            }
            Err(message) => self.dispatch.dispatch(Action::Failed { generation, message }),
        }
    }
}

/// Reads `source` into the replay worker, or into the page when there is no worker. A URL is
/// fetched by the worker itself, which parses the body for `mech` as it arrives; a file or
/// pasted text is read here into a JS buffer that is then transferred: the bytes are never
/// copied between the two.
async fn read(source: Source, mech: &str, report: &Rc<dyn Fn(Progress)>) -> Result<Bytes, String> {
    let mut reading = |fraction: f64| report(Progress { phase: "Reading", fraction });
    let worker = client::ready().await;
    let bytes = match source {
        Source::File(file) => browser::read_file(&file, &mut reading).await?,
        Source::Text(text) => js_sys::Uint8Array::from(text.as_bytes()),
        Source::Url(url) => {
            if let Some(worker) = &worker
                && let Some(held) = worker.fetch(&url, "the log", mech, report).await
            {
                return held.map(Bytes::Worker);
            }
            let response = browser::fetch(&url, "the log").await?;
            browser::read_body(&response, "the log", &url, &mut reading).await?
        }
    };
    Ok(match worker {
        Some(worker) => Bytes::Worker(worker.hold(&bytes)),
        None => Bytes::Here(browser::copy_in(&bytes).await),
    })
}

/// The app's loads: they dispatch to `model`'s reducer and replay with its rules and clock; the
/// generation counter lives as long as the app.
#[hook]
pub fn use_loads(model: &UseReducerHandle<Model>) -> Loads {
    let generation: Rc<Cell<u64>> = (*use_memo((), |()| Rc::new(Cell::new(0u64)))).clone();
    Loads { dispatch: model.dispatcher(), generation, rules: Rc::clone(&model.rules), now: model.now.clone() }
}
