//! The stream followers of `bench-server --subscribers`: N connections to
//! `GET …/events/stream` that record when each line's `id:` arrived.
//!
//! They share the machine with the server they measure, so every cycle they spend is one the
//! server lacks: all of them run on one thread (a current-thread Tokio runtime), read through
//! that thread's one buffer (hot in cache, however many sockets), and decode the chunked SSE
//! body in place with [`StreamScanner`], copying only a line cut in two by a read.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::ErrorKind;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use tokio::sync::watch;

use super::{Sample, percentile};

/// When each line (by seq) reached one subscriber: (seq, microseconds since the start).
type Arrivals = Vec<(u64, u64)>;

/// The subscribers, following.
pub(crate) struct Subscribers {
    thread: std::thread::JoinHandle<Result<Vec<Result<Arrivals>>>>,
    stop: watch::Sender<bool>,
    start: Instant,
}

/// What the subscribers saw.
pub(crate) struct Delivery {
    pub expected: u64,
    pub delivered: u64,
    /// Lines that arrived before their donation's 201 did.
    pub early: u64,
    /// Subscribers whose stream failed, with the first error.
    pub failed: usize,
    pub first_error: Option<String>,
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
}

impl Subscribers {
    /// Opens `n` streams after `after`, spread round-robin over the servers at `addrs`, and
    /// returns once each has had its first `state` message (it is subscribed: nothing committed
    /// from now on can be missed).
    pub(crate) fn start(addrs: &[String], n: usize, after: u64) -> Result<Subscribers> {
        let (stop, stopped) = watch::channel(false);
        let start = Instant::now();
        let (ready_tx, ready_rx) = mpsc::channel();
        let addrs = addrs.to_vec();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            runtime.block_on(async move {
                let tasks: Vec<_> = (0..n)
                    .map(|k| {
                        let addr = addrs[k % addrs.len()].clone();
                        tokio::spawn(follow(addr, after, ready_tx.clone(), stopped.clone(), start))
                    })
                    .collect();
                drop(ready_tx);
                let mut results = Vec::with_capacity(n);
                for task in tasks {
                    results.push(task.await.map_err(|e| anyhow!("a subscriber task failed: {e}"))?);
                }
                Ok(results)
            })
        });
        let mut ready = 0;
        while ready < n {
            match ready_rx.recv_timeout(Duration::from_secs(60)) {
                Ok(()) => ready += 1,
                Err(_) => bail!("only {ready} of {n} subscribers got the stream's first state message in 60 s"),
            }
        }
        Ok(Subscribers { thread, stop, start })
    }

    /// Lets the last lines arrive (2 s), stops the streams and computes the delivery latencies.
    pub(crate) fn finish(self, samples: &[Sample]) -> Result<Delivery> {
        let acks: HashMap<u64, u64> = samples
            .iter()
            .filter_map(|s| s.acked)
            .map(|(seq, at)| (seq, at.saturating_duration_since(self.start).as_micros() as u64))
            .collect();
        std::thread::sleep(Duration::from_secs(2));
        self.stop.send_replace(true);
        let results = self.thread.join().map_err(|_| anyhow!("the subscriber thread panicked"))??;
        let subscribers = results.len() as u64;
        let (mut early, mut failed, mut first_error) = (0u64, 0usize, None);
        let mut latencies = Vec::with_capacity(acks.len() * results.len());
        for result in results {
            let seen = match result {
                Ok(seen) => seen,
                Err(e) => {
                    failed += 1;
                    first_error.get_or_insert_with(|| format!("{e:#}"));
                    continue;
                }
            };
            for (seq, at) in seen {
                if let Some(&acked) = acks.get(&seq) {
                    if at < acked {
                        early += 1;
                    }
                    latencies.push(at.saturating_sub(acked) as f64 / 1000.0);
                }
            }
        }
        latencies.sort_by(f64::total_cmp);
        let p = |q: f64| percentile(&latencies, q);
        Ok(Delivery {
            expected: acks.len() as u64 * subscribers,
            delivered: latencies.len() as u64,
            early,
            failed,
            first_error,
            p50: p(0.50),
            p95: p(0.95),
            p99: p(0.99),
            max: latencies.last().copied().unwrap_or(f64::NAN),
        })
    }
}

thread_local! {
    /// Every subscriber's reads land here: one buffer stays in cache, a thousand would not.
    static READ_BUFFER: RefCell<Vec<u8>> = RefCell::new(vec![0; 1 << 18]);
}

/// One subscriber: `GET …/events/stream?after_seq=AFTER`, recording when each line's `id:`
/// arrived, until told to stop.
async fn follow(
    addr: String,
    after: u64,
    ready: mpsc::Sender<()>,
    mut stop: watch::Receiver<bool>,
    start: Instant,
) -> Result<Arrivals> {
    use tokio::io::AsyncWriteExt;
    let mut stream = tokio::net::TcpStream::connect(&addr).await.context("connecting")?;
    let request = format!("GET /api/v1/mechs/main/events/stream?after_seq={after} HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut scanner = StreamScanner::default();
    let (mut seen, mut ready) = (Vec::new(), Some(ready));
    loop {
        tokio::select! {
            biased;
            _ = stop.changed() => return Ok(seen),
            readable = stream.readable() => readable.context("waiting for the stream")?,
        }
        // Everything the socket holds, until it would block.
        while READ_BUFFER.with_borrow_mut(|buffer| -> Result<bool> {
            let n = match stream.try_read(buffer) {
                Ok(0) => bail!("the server closed the stream"),
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(false),
                Err(e) => return Err(e).context("reading the stream"),
            };
            let at = start.elapsed().as_micros() as u64;
            scanner.feed(&buffer[..n], &mut |message| match message {
                Message::Id(seq) => seen.push((seq, at)),
                Message::State => {
                    if let Some(ready) = ready.take() {
                        let _ = ready.send(());
                    }
                }
            })?;
            Ok(true)
        })? {}
    }
}

/// What the subscribers look for in a stream.
#[derive(Debug, PartialEq, Eq)]
enum Message {
    /// An `id:` line: the seq of the event whose `data:` follows.
    Id(u64),
    /// An `event: state` line.
    State,
}

/// Where [`StreamScanner`] is in the HTTP response.
#[derive(Debug, Clone, Copy)]
enum Framing {
    /// In the status line and headers.
    Head,
    /// In a chunk's size line (hex digits, maybe `;extensions`, then CR).
    Size {
        size: usize,
        digits: usize,
        extension: bool,
    },
    /// After the size line's CR.
    SizeLf {
        size: usize,
    },
    /// In a chunk's data: this many bytes to go.
    Data {
        left: usize,
    },
    /// After a chunk's data: CR, then LF.
    DataCr,
    DataLf,
    /// After the last (empty) chunk: trailer lines until a blank one (`empty`: none of this
    /// line's bytes but a CR yet).
    Trailers {
        empty: bool,
    },
    /// After the trailers: the server ended the stream.
    Ended,
}

/// An incremental decoder of the stream's HTTP/1.1 response: fed the bytes as they arrive, it
/// reports each `id:` and `event: state` line. The data is scanned where it lies; only a line
/// that a read cuts in two is copied (to be completed by the next).
#[derive(Debug)]
struct StreamScanner {
    framing: Framing,
    /// The head until its blank line.
    head: Vec<u8>,
    /// The start of a line whose end has not arrived yet.
    partial: Vec<u8>,
}

impl Default for StreamScanner {
    fn default() -> Self {
        StreamScanner { framing: Framing::Head, head: Vec::new(), partial: Vec::new() }
    }
}

/// Longer heads or chunk size lines are not a stream from `mechfund serve`.
const MAX_HEAD: usize = 16 << 10;
const MAX_CHUNK_DIGITS: usize = 15;

impl StreamScanner {
    fn feed(&mut self, mut bytes: &[u8], on: &mut impl FnMut(Message)) -> Result<()> {
        while let Some((&byte, rest)) = bytes.split_first() {
            self.framing = match self.framing {
                Framing::Head => {
                    // The blank line may straddle two reads: search from just before the new bytes.
                    let from = self.head.len().saturating_sub(3);
                    let take = bytes.len().min((MAX_HEAD + 4).saturating_sub(self.head.len()));
                    self.head.extend_from_slice(&bytes[..take]);
                    let Some(end) = memchr::memmem::find(&self.head[from..], b"\r\n\r\n").map(|i| from + i + 4) else {
                        ensure!(self.head.len() <= MAX_HEAD, "the response head is over {MAX_HEAD} bytes");
                        bytes = &bytes[take..];
                        continue;
                    };
                    check_head(&self.head[..end])?;
                    // What came after the blank line is body.
                    bytes = &bytes[take - (self.head.len() - end)..];
                    self.head = Vec::new();
                    Framing::Size { size: 0, digits: 0, extension: false }
                }
                Framing::Size { size, digits, extension } => {
                    bytes = rest;
                    match byte {
                        b'\r' if digits > 0 => Framing::SizeLf { size },
                        _ if extension => Framing::Size { size, digits, extension },
                        b';' if digits > 0 => Framing::Size { size, digits, extension: true },
                        _ => {
                            let digit = char::from(byte)
                                .to_digit(16)
                                .with_context(|| format!("byte {byte:#04x} in a chunk size"))?;
                            ensure!(digits < MAX_CHUNK_DIGITS, "a chunk size of over {MAX_CHUNK_DIGITS} digits");
                            Framing::Size { size: size * 16 + digit as usize, digits: digits + 1, extension }
                        }
                    }
                }
                Framing::SizeLf { size } => {
                    ensure!(byte == b'\n', "byte {byte:#04x} after a chunk size's CR");
                    bytes = rest;
                    if size == 0 { Framing::Trailers { empty: true } } else { Framing::Data { left: size } }
                }
                Framing::Data { left } => {
                    let n = left.min(bytes.len());
                    self.lines(&bytes[..n], on)?;
                    bytes = &bytes[n..];
                    if n == left { Framing::DataCr } else { Framing::Data { left: left - n } }
                }
                Framing::DataCr => {
                    ensure!(byte == b'\r', "byte {byte:#04x} instead of the CR after a chunk");
                    bytes = rest;
                    Framing::DataLf
                }
                Framing::DataLf => {
                    ensure!(byte == b'\n', "byte {byte:#04x} instead of the LF after a chunk");
                    bytes = rest;
                    Framing::Size { size: 0, digits: 0, extension: false }
                }
                Framing::Trailers { empty } => {
                    bytes = rest;
                    match byte {
                        b'\n' if empty => Framing::Ended,
                        b'\n' => Framing::Trailers { empty: true },
                        b'\r' => Framing::Trailers { empty },
                        _ => Framing::Trailers { empty: false },
                    }
                }
                Framing::Ended => bail!("bytes after the end of the response"),
            };
        }
        Ok(())
    }

    /// SSE text (part of a chunk): each complete line, the partial one from before first.
    fn lines(&mut self, mut text: &[u8], on: &mut impl FnMut(Message)) -> Result<()> {
        if !self.partial.is_empty() {
            let Some(end) = memchr::memchr(b'\n', text) else {
                self.partial.extend_from_slice(text);
                return Ok(());
            };
            self.partial.extend_from_slice(&text[..end]);
            let line = std::mem::take(&mut self.partial);
            message(&line, on)?;
            self.partial = line;
            self.partial.clear();
            text = &text[end + 1..];
        }
        let mut start = 0;
        for end in memchr::memchr_iter(b'\n', text) {
            message(&text[start..end], on)?;
            start = end + 1;
        }
        self.partial.extend_from_slice(&text[start..]);
        Ok(())
    }
}

/// `HTTP/1.1 200` with a chunked body.
fn check_head(head: &[u8]) -> Result<()> {
    let head = String::from_utf8_lossy(head);
    let status = head.lines().next().unwrap_or("");
    ensure!(status.starts_with("HTTP/1.1 200"), "the stream answered {status:?}");
    let chunked = head.lines().any(|line| {
        line.split_once(':').is_some_and(|(name, value)| {
            name.trim().eq_ignore_ascii_case("transfer-encoding") && value.trim().eq_ignore_ascii_case("chunked")
        })
    });
    ensure!(chunked, "the stream's body is not chunked");
    Ok(())
}

/// One SSE line: `id: SEQ` or `event: state` (everything else is of no interest here).
fn message(line: &[u8], on: &mut impl FnMut(Message)) -> Result<()> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if let Some(id) = line.strip_prefix(b"id:") {
        let id = id.strip_prefix(b" ").unwrap_or(id);
        let seq = std::str::from_utf8(id)
            .ok()
            .and_then(|text| text.parse().ok())
            .with_context(|| format!("the id {:?} is not a seq", String::from_utf8_lossy(id)))?;
        on(Message::Id(seq));
    } else if line == b"event: state" {
        on(Message::State);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n";

    /// The body of a stream as `mechfund serve` sends it, written out by hand: the retry line,
    /// two events and a state message in one chunk, one more event in the next.
    fn response() -> String {
        let first = "id: 41\ndata: {\"seq\":41}\n\nid: 42\ndata: {\"seq\":42,\"note\":\"id: 7\"}\n\n\
                     event: state\ndata: {\"state\":{}}\n\n";
        let second = "id: 1043\ndata: {}\n\n";
        format!(
            "{HEAD}d\r\nretry: 1000\n\n\r\n{:x}\r\n{first}\r\n{:x};ext=1\r\n{second}\r\n0\r\nx-trailer: 1\r\n\r\n",
            first.len(),
            second.len()
        )
    }

    fn scan(pieces: &[&[u8]]) -> Result<Vec<Message>> {
        let mut scanner = StreamScanner::default();
        let mut seen = Vec::new();
        for piece in pieces {
            scanner.feed(piece, &mut |m| seen.push(m))?;
        }
        Ok(seen)
    }

    #[test]
    fn finds_ids_and_state_however_the_reads_cut_the_stream() {
        let text = response();
        let bytes = text.as_bytes();
        let expected = vec![Message::Id(41), Message::Id(42), Message::State, Message::Id(1043)];
        assert_eq!(scan(&[bytes]).unwrap(), expected);
        for cut in 1..bytes.len() {
            assert_eq!(scan(&[&bytes[..cut], &bytes[cut..]]).unwrap(), expected, "cut at {cut}");
        }
        let one_by_one: Vec<&[u8]> = bytes.chunks(1).collect();
        assert_eq!(scan(&one_by_one).unwrap(), expected);
    }

    #[test]
    fn refuses_what_is_not_a_chunked_event_stream() {
        let error = |text: &str| scan(&[text.as_bytes()]).unwrap_err().to_string();
        assert!(error("HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n").contains("404"));
        assert!(error("HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello").contains("not chunked"));
        assert!(error(&format!("{HEAD}zz\r\n")).contains("chunk size"));
        assert!(error(&format!("{HEAD}3\r\nabcX\n")).contains("CR after a chunk"));
        assert!(error(&format!("{HEAD}8\r\nid: x\n\n\n\r\n")).contains("not a seq"));
        assert!(error(&format!("{HEAD}0\r\n\r\nmore")).contains("after the end"));
        assert!(error(&format!("HTTP/1.1 200 OK\r\nx: {}", "y".repeat(MAX_HEAD))).contains("head is over"));
    }
}
