//! [`AppState`]: what every handler gets, and the two things most of them do with it: find a
//! mech's latest state, and read the store on a blocking thread.

use std::path::PathBuf;
use std::sync::Arc;

use axum::http::HeaderValue;
use tokio::sync::mpsc;

use super::error::ApiError;
use super::ratelimit::RateLimiter;
use super::shared::Shared;
use super::slots::Exports;
use super::writer::WriteRequest;
use crate::store::snapshot::newer_snapshot;
use crate::store::{Readers, Sql, StoreError, check_mech_id};

/// Everything the handlers need.
#[derive(Clone, Debug)]
pub struct AppState {
    /// Rules and published states.
    pub shared: Arc<Shared>,
    /// The writer's queue.
    pub writer: mpsc::Sender<WriteRequest>,
    /// Read-only connections.
    pub readers: Arc<Readers>,
    /// The admin token.
    pub token: Arc<str>,
    /// The dashboard's files; `None`: the ones built into the binary.
    pub dist: Option<PathBuf>,
    /// The JS package, served at `/embed/`; `None`: the one built into the binary.
    pub embed: Option<PathBuf>,
    /// Origins allowed by CORS (none: no CORS headers; `*` alone: any origin).
    pub cors_origins: Vec<HeaderValue>,
    /// Reads need the token too (not `/healthz`, the dashboard or `/embed/`).
    pub private: bool,
    /// Per-token and per-donor limits on writes; `None` when disabled.
    pub rate_limiter: Option<Arc<RateLimiter>>,
    /// Largest body of `POST …/import`, in bytes.
    pub import_limit: usize,
    /// Why writes are refused (403 `read_only`): the server follows a DDC installation.
    pub read_only: Option<Arc<str>>,
    /// The exports of `…/events.jsonl` streaming now, and their limits.
    pub exports: Arc<Exports>,
}

impl AppState {
    /// The latest state of an existing mech, or 404. With a store shared by several servers,
    /// the store is asked first whether another server committed a later state (the listener
    /// would publish it within milliseconds; a read right after another server's answer must
    /// not wait for that).
    ///
    /// # Errors
    /// 404 `not_found` naming the mech; 503 or 500 when a shared store cannot be read.
    pub async fn mech(&self, mech: &str) -> Result<Arc<mechfund_core::State>, ApiError> {
        // A name that is no mech id names no mech (and PostgreSQL's text cannot even hold some,
        // such as NUL): 404 without asking the store.
        if matches!(*self.readers, Readers::Postgres(_)) && check_mech_id(mech).is_ok() {
            let known = self.shared.state(mech).map(|state| state.last_event_seq);
            let name = mech.to_owned();
            if let Some(state) = self.read(move |db| newer_snapshot(db, &name, known)).await? {
                self.shared.offer(Arc::new(state));
            }
        }
        self.shared.state(mech).ok_or_else(|| ApiError::not_found(format!("no mech \"{mech}\"")))
    }

    /// Runs `f` on a read connection on a blocking thread.
    ///
    /// # Errors
    /// 503 while the store cannot be reached (PostgreSQL restarting), 500 when it fails (logged
    /// here, with the cause).
    pub async fn read<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut dyn Sql) -> Result<R, StoreError> + Send + 'static,
    ) -> Result<R, ApiError> {
        let readers = self.readers.clone();
        match tokio::task::spawn_blocking(move || readers.with(f)).await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) if e.is_unavailable() => {
                tracing::warn!(error = %e, "a read found the store unavailable");
                Err(ApiError::unavailable())
            }
            Ok(Err(e)) => {
                tracing::error!(error = %e, "read failed");
                Err(ApiError::internal())
            }
            Err(_) => Err(ApiError::internal()),
        }
    }
}
