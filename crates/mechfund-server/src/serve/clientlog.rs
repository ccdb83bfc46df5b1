//! Client errors in the log, at most [`LINES_PER_SECOND`] lines a second.
//!
//! What a client does wrong (an odd path, a head or body that never arrives, an answer it never
//! reads) is worth a line for the operator, but a client can do it as fast as it can send: one
//! log line per bad request would let it fill the disk and drown the lines that matter. So these
//! lines share one budget per second for the whole process; the lines over it are dropped and
//! counted, and the next line that gets through carries the count as `suppressed`.
//!
//! Log through `client_error!`, never `tracing` directly, for anything a
//! client can cause at will. Failures of the server itself are not client errors: they are
//! logged in full where they happen.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Lines about client errors logged per second at most.
pub const LINES_PER_SECOND: u32 = 10;

/// A budget of lines per one-second window, and the lines dropped since the last one logged.
#[derive(Debug)]
pub struct Budget {
    per_second: u32,
    window: Mutex<Window>,
}

#[derive(Debug)]
struct Window {
    start: Option<Instant>,
    used: u32,
    suppressed: u64,
}

impl Budget {
    /// `per_second` lines a second.
    #[must_use]
    pub const fn new(per_second: u32) -> Budget {
        Budget { per_second, window: Mutex::new(Window { start: None, used: 0, suppressed: 0 }) }
    }

    /// Whether a line may be logged at `now`: `Some(n)` when it may, `n` being the lines dropped
    /// since the last one that was; `None` when it is dropped (and counted).
    pub fn allow_at(&self, now: Instant) -> Option<u64> {
        // A poisoned lock only means a panic elsewhere while counting: the counts are still usable.
        let mut window = self.window.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if window.start.is_none_or(|start| now.saturating_duration_since(start) >= Duration::from_secs(1)) {
            window.start = Some(now);
            window.used = 0;
        }
        if window.used < self.per_second {
            window.used += 1;
            Some(std::mem::take(&mut window.suppressed))
        } else {
            window.suppressed += 1;
            None
        }
    }
}

/// The process's budget.
pub static BUDGET: Budget = Budget::new(LINES_PER_SECOND);

/// Whether a line about a client error may be logged now; see [`Budget::allow_at`].
pub fn allow() -> Option<u64> {
    BUDGET.allow_at(Instant::now())
}

/// Logs a line about a client error at `info` (or the level given first, `warn`), within the
/// process's budget of [`LINES_PER_SECOND`]; a line that gets through after some were dropped
/// says how many in its `suppressed` field. Takes `tracing`'s field and message syntax.
macro_rules! client_error {
    (warn, $($rest:tt)+) => {
        if let Some(suppressed) = $crate::serve::clientlog::allow() {
            tracing::warn!(suppressed, $($rest)+);
        }
    };
    ($($rest:tt)+) => {
        if let Some(suppressed) = $crate::serve::clientlog::allow() {
            tracing::info!(suppressed, $($rest)+);
        }
    };
}
pub(crate) use client_error;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_gets_the_budget_and_the_next_window_counts_the_rest() {
        let budget = Budget::new(3);
        let t0 = Instant::now();
        let burst: Vec<_> = (0..10).map(|i| budget.allow_at(t0 + Duration::from_millis(i * 10))).collect();
        assert_eq!(burst, [Some(0), Some(0), Some(0), None, None, None, None, None, None, None]);
        // A second later: the first line through says seven were dropped; the next ones none.
        let later = t0 + Duration::from_millis(1000);
        assert_eq!(budget.allow_at(later), Some(7));
        assert_eq!(budget.allow_at(later), Some(0));
        // Quiet for a while: the window starts again at the next line.
        assert_eq!(budget.allow_at(later + Duration::from_secs(60)), Some(0));
    }
}
