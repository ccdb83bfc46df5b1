//! The connections of `mechfund serve`: accepted up to a cap, and closed when a client stalls.
//!
//! `axum::serve` has no timeouts and no limit, so idle or trickling connections piled up until
//! the file descriptors ran out. Here hyper serves each connection itself, with:
//!
//! - a **cap** on connections served at once ([`ConnArgs::limits`]): the soft limit of open files
//!   is raised to the hard one at start and the cap left well below it, so the store, the
//!   read connections and the files always get descriptors; past the cap the server stops
//!   accepting and new connections wait in the listen backlog until one closes;
//! - a **head timeout** (hyper's `header_read_timeout`): a request's head must arrive whole
//!   within it, counted from the connection's start or the end of the previous answer, so it
//!   is also how long a kept-alive connection may sit idle;
//! - a **body pace** ([`Paced`]): a request body gets the body timeout to start and must then
//!   average [`BODY_MIN_RATE`], or the request answers 408 and the connection closes
//!   (tower-http's `RequestBodyTimeoutLayer` restarts its timer at every chunk, so a body
//!   trickled a byte at a time would never time out; imports are large, hence a rate);
//! - a **send timeout** (`tokio-io-timeout` on the socket): a client that takes nothing of an
//!   answer for that long, its socket buffer full, loses the connection.
//!
//! None of them cuts an event stream or a download that is being read: a stream waits on the
//! server, not on the client, and the send timeout only runs while a write is blocked.

use std::convert::Infallible;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use clap::Args;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::time::{Instant, Sleep};
use tokio_io_timeout::TimeoutStream;
use tower::ServiceExt;

use super::clientlog::client_error;
use super::error::ApiError;

/// Bytes a second a request body must average once its start time is over.
pub const BODY_MIN_RATE: u64 = 16 * 1024;

/// The connection options of `mechfund serve`.
#[derive(Clone, Debug, Args)]
pub struct ConnArgs {
    /// Seconds a client gets to send a request's head, counted from the connection's start or the
    /// end of the previous answer (so also how long a kept-alive connection may sit idle).
    #[arg(long, value_name = "SECS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    header_timeout_secs: u64,
    /// Seconds a request body gets to start; then it must average 16 KiB/s (a body of N KiB gets
    /// SECS + N/16 seconds), or the request answers 408 and the connection is closed.
    #[arg(long, value_name = "SECS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    body_timeout_secs: u64,
    /// Seconds a client may take nothing of an answer (its socket full) before its connection is
    /// closed.
    #[arg(long, value_name = "SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    send_timeout_secs: u64,
    /// Connections served at once; more wait in the listen backlog. Default: the open-file limit
    /// (raised to its hard limit at start) less a quarter of it, at least 256 and at most 4096,
    /// kept for the store and the files.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    max_connections: Option<u32>,
}

/// The limits in force, from [`ConnArgs::limits`].
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// A request's head, and the idle time between requests.
    pub header: Duration,
    /// The start of a request body (then [`BODY_MIN_RATE`]).
    pub body: Duration,
    /// A write to a client that blocks this long closes the connection.
    pub send: Duration,
    /// Connections served at once.
    pub max_connections: usize,
    /// The soft limit of open files, after raising it.
    pub open_files: u64,
}

impl ConnArgs {
    /// The limits in force. Raises the soft limit of open files to the hard one first (once per
    /// process is enough; later calls change nothing) and derives the connection cap from it
    /// unless `--max-connections` gave one.
    #[must_use]
    pub fn limits(&self) -> Limits {
        let open_files = match rlimit::increase_nofile_limit(u64::MAX) {
            Ok(limit) => limit,
            Err(e) => {
                tracing::warn!(error = %e, "cannot raise the limit of open files; assuming 1024");
                1024
            }
        };
        let max_connections = match self.max_connections {
            Some(n) => usize::try_from(n).unwrap_or(usize::MAX),
            None => connection_cap(open_files),
        };
        Limits {
            header: Duration::from_secs(self.header_timeout_secs),
            body: Duration::from_secs(self.body_timeout_secs),
            send: Duration::from_secs(self.send_timeout_secs),
            max_connections,
            open_files,
        }
    }
}

/// Connections the kernel completes and queues until they are accepted (it caps this at
/// `net.core.somaxconn`): a burst of clients, or those waiting while the server is at its cap.
/// (Tokio's `bind` queues 128, past which the kernel drops handshakes and a client retries a
/// second later.)
pub const BACKLOG: u32 = 1024;

/// A listener on `addr` with a backlog of [`BACKLOG`].
///
/// # Errors
/// When the socket cannot be made, bound or listened on.
pub fn bind(addr: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    // As the standard library does: a restarted server binds at once, whatever TIME_WAIT holds.
    #[cfg(not(windows))]
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// Connections served at once for a limit of `open_files`: a quarter of it (at least 256, at most
/// 4096) is left for the store (three descriptors per SQLite connection: the writer, the readers
/// and the exports), the dashboard's files and the log.
fn connection_cap(open_files: u64) -> usize {
    let reserve = (open_files / 4).clamp(256, 4096);
    usize::try_from(open_files.saturating_sub(reserve).max(16)).unwrap_or(usize::MAX)
}

/// Serves `app` on `listener` until `shutdown` completes; then stops accepting and waits for
/// the connections to finish the requests in flight (idle ones close at once).
pub async fn serve(listener: TcpListener, app: Router, limits: Limits, shutdown: impl Future<Output = ()>) {
    tracing::info!(
        max_connections = limits.max_connections,
        open_files = limits.open_files,
        header_timeout_s = limits.header.as_secs(),
        body_timeout_s = limits.body.as_secs(),
        body_min_rate = BODY_MIN_RATE,
        send_timeout_s = limits.send.as_secs(),
        "connections"
    );
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(limits.header);
    let mut shutdown = pin!(shutdown);
    loop {
        let permit = match permits.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                client_error!(
                    warn,
                    max_connections = limits.max_connections,
                    "connection limit reached: new connections wait in the listen backlog"
                );
                tokio::select! {
                    permit = permits.clone().acquire_owned() => match permit {
                        Ok(permit) => permit,
                        // Never closed.
                        Err(_) => break,
                    },
                    () = &mut shutdown => break,
                }
            }
        };
        let tcp = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => tcp,
                Err(e) => {
                    accept_failed(&e).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Answers and event-stream batches are small writes that must leave at once: without
        // TCP_NODELAY, Nagle's algorithm holds one back until the previous is acknowledged.
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        let mut io = TimeoutStream::new(tcp);
        io.set_write_timeout(Some(limits.send));
        let io = TokioIo::new(Box::pin(io));
        let app = app.clone();
        let body_timeout = limits.body;
        let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            let app = app.clone();
            async move { Ok::<_, Infallible>(answer(app, request, body_timeout).await) }
        });
        let connection = graceful.watch(http.serve_connection(io, service));
        let send_timeout = limits.send;
        tokio::spawn(async move {
            let ended = connection.await;
            drop(permit);
            if let Err(e) = ended {
                connection_failed(&e, send_timeout);
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// The app's answer to `request`, whose body is [`Paced`]; 408 when the body was too slow.
async fn answer(app: Router, request: hyper::Request<Incoming>, body_timeout: Duration) -> Response {
    let too_slow = Arc::new(AtomicBool::new(false));
    let request = request.map(|body| Paced::new(body, body_timeout, too_slow.clone()));
    let Ok(response) = app.oneshot(request).await;
    if !too_slow.load(Ordering::Relaxed) {
        return response;
    }
    client_error!("a request body came too slowly: 408, connection closed");
    let message = format!(
        "the request body did not arrive in time: {} s to start, then at least {BODY_MIN_RATE} bytes a second",
        body_timeout.as_secs()
    );
    let mut response = ApiError::new(StatusCode::REQUEST_TIMEOUT, "request_timeout", message).into_response();
    response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// Why a connection ended early, in the log: stalls and garbage at `info` within the budget of
/// client errors; a head that never came (an idle kept-alive connection, a browser's spare
/// connection) is routine, at `debug`.
fn connection_failed(e: &hyper::Error, send_timeout: Duration) {
    let write_stalled = std::error::Error::source(e)
        .and_then(|source| source.downcast_ref::<std::io::Error>())
        .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut);
    if write_stalled {
        client_error!(
            send_timeout_s = send_timeout.as_secs(),
            "a client took nothing of an answer within the send timeout: connection closed"
        );
    } else if e.is_parse() {
        client_error!(error = %e, "a client sent a malformed request head");
    } else {
        tracing::debug!(error = %e, "connection ended");
    }
}

/// After a failed `accept`: go on at once when it was the client's connection that failed,
/// otherwise (out of descriptors, say) wait a second rather than spin.
async fn accept_failed(e: &std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(e.kind(), ConnectionAborted | ConnectionRefused | ConnectionReset) {
        return;
    }
    client_error!(warn, error = %e, "cannot accept a connection");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// A request body that must arrive in time: within `start` of the request's head it must
/// have begun, and by `start` + n / [`BODY_MIN_RATE`] seconds hold n bytes; else an error (the
/// extractor's rejection), and `too_slow` is set so the answer becomes a 408.
#[derive(Debug)]
pub struct Paced {
    body: Incoming,
    head_at: Instant,
    start: Duration,
    received: u64,
    deadline: Option<Pin<Box<Sleep>>>,
    too_slow: Arc<AtomicBool>,
}

impl Paced {
    fn new(body: Incoming, start: Duration, too_slow: Arc<AtomicBool>) -> Paced {
        Paced { body, head_at: Instant::now(), start, received: 0, deadline: None, too_slow }
    }

    fn deadline(&self) -> Instant {
        self.head_at + self.start + Duration::from_millis(self.received.saturating_mul(1000) / BODY_MIN_RATE)
    }
}

/// The error a [`Paced`] body ends with.
#[derive(Debug, thiserror::Error)]
#[error("the request body came too slowly")]
pub struct TooSlow;

impl Body for Paced {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.body).poll_frame(cx) {
            if let Some(Ok(data)) = frame.as_ref().map(|f| f.as_ref().map(Frame::data_ref)) {
                this.received += data.map_or(0, |d| d.len() as u64);
                let deadline = this.deadline();
                if let Some(sleep) = &mut this.deadline {
                    sleep.as_mut().reset(deadline);
                }
            }
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        let deadline = this.deadline();
        let sleep = this.deadline.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if sleep.as_mut().poll(cx).is_ready() {
            this.too_slow.store(true, Ordering::Relaxed);
            return Poll::Ready(Some(Err(Box::new(TooSlow))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::connection_cap;

    #[test]
    fn the_connection_cap_leaves_descriptors_for_the_store() {
        assert_eq!(connection_cap(1024), 768);
        assert_eq!(connection_cap(20_000), 20_000 - 4096);
        assert_eq!(connection_cap(1 << 20), (1 << 20) - 4096);
        assert_eq!(connection_cap(100), 16);
    }
}
