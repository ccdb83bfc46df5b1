//! Reading a log in blocks of whole lines, and working on the blocks on every core, ahead of a
//! fold that sees them in file order.
//!
//! Parsing is most of replay's cost and lines are independent. Each worker thread takes the next
//! block from the reader, works on it (parses its lines, say) and queues the result; results are
//! committed (folded) strictly in file order by whichever worker finds the next one ready. So
//! every core parses, and the sequential fold runs on whichever core is free at the moment, with
//! no thread of its own to wake. Memory is bounded by a few blocks per worker, not by the log.

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

use mechfund_core::{Line, parse_line};

/// Bytes read per block: small enough that a few per worker stay in the cache and in a small
/// memory budget, large enough that taking one costs next to nothing.
const BLOCK: usize = 1 << 20;

/// Results waiting for their turn, per worker, before a worker waits instead of reading on.
const AHEAD_PER_WORKER: usize = 4;

/// A reader cut into blocks of whole lines.
struct Source<R> {
    reader: R,
    /// Bytes per block.
    block: usize,
    /// The start of a line the last block did not hold.
    carry: Vec<u8>,
    /// The next block's number.
    next: u64,
    done: bool,
}

impl<R: Read> Source<R> {
    fn new(reader: R, block: usize) -> Source<R> {
        Source { reader, block, carry: Vec::new(), next: 0, done: false }
    }

    /// Fills `buf` (grown as needed, never shrunk, so it is zeroed once) with the next block:
    /// whole lines, except that the last block of the input may end without a newline. Its
    /// number and length, or `None` at the end.
    fn fill(&mut self, buf: &mut Vec<u8>) -> io::Result<Option<(u64, usize)>> {
        if self.done {
            return Ok(None);
        }
        let wanted = self.block.max(2 * self.carry.len());
        if buf.len() < wanted {
            buf.resize(wanted, 0);
        }
        buf[..self.carry.len()].copy_from_slice(&self.carry);
        let mut filled = self.carry.len();
        self.carry.clear();
        loop {
            let mut eof = false;
            while filled < buf.len() {
                match self.reader.read(&mut buf[filled..]) {
                    Ok(0) => {
                        eof = true;
                        break;
                    }
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            let end = if eof {
                self.done = true;
                filled
            } else {
                match memchr::memrchr(b'\n', &buf[..filled]) {
                    Some(i) => i + 1,
                    None => {
                        // A single line longer than the buffer: make room for more of it.
                        buf.resize(buf.len() * 2, 0);
                        continue;
                    }
                }
            };
            self.carry.extend_from_slice(&buf[end..filled]);
            if end == 0 {
                return Ok(None);
            }
            self.next += 1;
            return Ok(Some((self.next - 1, end)));
        }
    }
}

/// Calls `block` with consecutive chunks of `reader` that end at a line boundary (or at the end
/// of the input), on this thread.
///
/// # Errors
/// Read errors, or the first error `block` returns (which stops reading).
pub fn for_each_block<R: Read, E: From<io::Error>>(
    reader: R,
    mut block: impl FnMut(&[u8]) -> Result<(), E>,
) -> Result<(), E> {
    let mut source = Source::new(reader, BLOCK);
    let mut buf = Vec::new();
    while let Some((_, len)) = source.fill(&mut buf)? {
        block(&buf[..len])?;
    }
    Ok(())
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A worker that panicked has stopped everything already (see `for_each_block_on`).
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The results of blocks that were worked on and wait for their turn.
struct Queue<T> {
    /// The number of the block to commit next.
    next: u64,
    results: BTreeMap<u64, (T, usize)>,
}

/// What the workers share.
struct Shared<R, T, C, E> {
    source: Mutex<Source<R>>,
    queue: Mutex<Queue<T>>,
    /// Signalled when the queue shrinks or everything stops.
    room: Condvar,
    /// The commit function and the first error of anything.
    commit: Mutex<(C, Option<E>)>,
    stop: AtomicBool,
    ahead: usize,
}

impl<R, T, C, E> Shared<R, T, C, E>
where
    R: Read,
    C: FnMut(T, usize) -> Result<(), E>,
    E: From<io::Error>,
{
    fn fail(&self, error: E) {
        let mut commit = lock(&self.commit);
        commit.1.get_or_insert(error);
        self.stop.store(true, Ordering::Release);
        self.room.notify_all();
    }

    /// Commits the results that are next in order, if no other worker is at it. Looks again
    /// after letting go: a result queued meanwhile by a worker that found the commit busy would
    /// otherwise wait for the next block's worker.
    fn commit_ready(&self) {
        while let Ok(mut commit) = self.commit.try_lock() {
            loop {
                let taken = {
                    let mut queue = lock(&self.queue);
                    let next = queue.next;
                    let taken = queue.results.remove(&next);
                    queue.next += u64::from(taken.is_some());
                    taken
                };
                let Some((result, bytes)) = taken else { break };
                self.room.notify_all();
                if self.stop.load(Ordering::Acquire) {
                    break;
                }
                if let Err(e) = (commit.0)(result, bytes) {
                    commit.1.get_or_insert(e);
                    self.stop.store(true, Ordering::Release);
                    self.room.notify_all();
                    break;
                }
            }
            drop(commit);
            let queue = lock(&self.queue);
            if self.stop.load(Ordering::Acquire) || !queue.results.contains_key(&queue.next) {
                return;
            }
        }
    }

    fn work(&self, work: &(impl Fn(&[u8]) -> T + Sync)) {
        let mut buf = Vec::new();
        while !self.stop.load(Ordering::Acquire) {
            {
                let mut queue = lock(&self.queue);
                while queue.results.len() >= self.ahead && !self.stop.load(Ordering::Acquire) {
                    queue = self.room.wait(queue).unwrap_or_else(PoisonError::into_inner);
                }
            }
            let taken = lock(&self.source).fill(&mut buf);
            let (number, len) = match taken {
                Ok(Some(block)) => block,
                Ok(None) => return,
                Err(e) => return self.fail(E::from(e)),
            };
            let result = work(&buf[..len]);
            lock(&self.queue).results.insert(number, (result, len));
            self.commit_ready();
        }
    }
}

/// How blocks are cut and worked on.
#[derive(Clone, Copy, Debug)]
pub struct Workers {
    /// Worker threads, the calling one included.
    pub threads: usize,
    /// Bytes per block (a longer line makes a longer block).
    pub block: usize,
}

impl Workers {
    /// One worker per core (at most 8), blocks of 1 MiB.
    pub fn all_cores() -> Workers {
        Workers {
            threads: std::thread::available_parallelism().map_or(2, std::num::NonZero::get).clamp(1, 8),
            block: BLOCK,
        }
    }
}

/// Runs `work` on consecutive blocks of whole lines of `reader` on every worker, and `commit`
/// with each block's result and length in the order of the blocks.
///
/// # Errors
/// Read errors, or the first error `commit` returns (which stops everything).
pub fn for_each_block_on<R, T, E>(
    workers: Workers,
    reader: R,
    work: impl Fn(&[u8]) -> T + Sync,
    commit: impl FnMut(T, usize) -> Result<(), E> + Send,
) -> Result<(), E>
where
    R: Read + Send,
    T: Send,
    E: From<io::Error> + Send,
{
    let threads = workers.threads.max(1);
    let source = Source::new(reader, workers.block.max(1));
    let shared = Shared {
        source: Mutex::new(source),
        queue: Mutex::new(Queue { next: 0, results: BTreeMap::new() }),
        room: Condvar::new(),
        commit: Mutex::new((commit, None)),
        stop: AtomicBool::new(false),
        ahead: AHEAD_PER_WORKER * threads,
    };
    let run = || {
        // Work never panics; should it anyway, the other workers stop instead of waiting for
        // that worker's block for ever, and the scope passes the panic on.
        let _stop_on_panic = StopOnPanic(&shared.stop, &shared.room);
        shared.work(&work);
    };
    std::thread::scope(|scope| {
        for _ in 1..threads {
            scope.spawn(run);
        }
        run();
    });
    // Every result was committed by the workers; nothing is left but an error to return.
    shared.commit.into_inner().unwrap_or_else(PoisonError::into_inner).1.map_or(Ok(()), Err)
}

/// Stops every worker when dropped by a panicking thread.
struct StopOnPanic<'a>(&'a AtomicBool, &'a Condvar);

impl Drop for StopOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.store(true, Ordering::Release);
            self.1.notify_all();
        }
    }
}

/// Calls `sink` with every line of `reader` (1-based number, parsed for `mech`), in file order,
/// parsing on every core ahead of `sink`. `progress` gets the bytes consumed per block.
///
/// # Errors
/// Read errors, or the first error `sink` returns (which stops reading).
pub fn for_each_line<R: Read + Send, E: From<io::Error> + Send>(
    workers: Workers,
    reader: R,
    mech: &str,
    mut progress: impl FnMut(u64) + Send,
    mut sink: impl FnMut(u64, &Line) -> Result<(), E> + Send,
) -> Result<(), E> {
    let mut line_no = 0u64;
    for_each_block_on(
        workers,
        reader,
        |block| parse_lines(block.strip_suffix(b"\n").unwrap_or(block), mech),
        |lines: Vec<Line>, bytes| {
            for line in &lines {
                line_no += 1;
                sink(line_no, line)?;
            }
            progress(bytes as u64);
            Ok(())
        },
    )
}

/// Parses the lines of `body` (the last one has no newline; an empty body is one blank line).
pub fn parse_lines(body: &[u8], mech: &str) -> Vec<Line> {
    // Sized up front for lines of 100 bytes or more (DDC's are about 200): a `Line` is a few
    // hundred bytes, and regrowing would copy them all. Pages never written cost no memory.
    let mut out = Vec::with_capacity(body.len() / 100 + 1);
    let mut start = 0;
    for end in memchr::memchr_iter(b'\n', body).chain(std::iter::once(body.len())) {
        let line = &body[start..end];
        out.push(parse_line(line.strip_suffix(b"\r").unwrap_or(line), mech));
        start = end + 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use mechfund_core::replay::lines;

    fn numbered(text: &[u8]) -> Vec<(u64, Line)> {
        let mut out = Vec::new();
        for_each_line::<_, io::Error>(
            Workers::all_cores(),
            text,
            "main",
            |_| {},
            |n, l| {
                out.push((n, l.clone()));
                Ok(())
            },
        )
        .unwrap();
        out
    }

    #[test]
    fn numbers_lines_like_the_core() {
        for text in [&b""[..], b"a", b"a\n", b"a\n\n", b"\n\na\r\nb", b"x\ny\n", b"\n"] {
            let ours: Vec<u64> = numbered(text).into_iter().map(|(n, _)| n).collect();
            let core: Vec<u64> = lines(text).map(|(n, _)| n).collect();
            assert_eq!(ours, core, "{:?}", String::from_utf8_lossy(text));
        }
    }

    #[test]
    fn long_inputs_split_across_blocks_and_threads() {
        let line = br#"{"seq":1,"ts":"2025-01-01T00:00:00Z","type":"X","mech_id":"main"}"#;
        let mut text = Vec::new();
        for _ in 0..200_000 {
            text.extend_from_slice(line);
            text.push(b'\n');
        }
        let parsed = numbered(&text);
        assert_eq!(parsed.len(), 200_000);
        assert_eq!(parsed.last().map(|(n, _)| *n), Some(200_000));
        assert!(parsed.iter().all(|(_, l)| matches!(l, Line::Mine(_))));
    }

    /// Blocks of a few lines, worked on for different times by four workers: committed in
    /// order, each once, with the lengths that cover the input; lines longer than a block too.
    #[test]
    fn results_are_committed_in_block_order() {
        let mut text = String::new();
        for i in 0..2_000 {
            let long = if i % 97 == 0 { "x".repeat(300) } else { String::new() };
            text.push_str(&format!("line {i} {long}\n"));
        }
        text.push_str("last, without a newline");
        let mut committed = Vec::new();
        let mut covered = 0;
        for_each_block_on::<_, _, io::Error>(
            Workers { threads: 4, block: 64 },
            text.as_bytes(),
            |block| {
                // Some blocks take longer, so later ones finish first.
                if block.len().is_multiple_of(5) {
                    std::thread::sleep(std::time::Duration::from_micros(300));
                }
                block.split(|&b| b == b'\n').filter(|l| !l.is_empty()).map(<[u8]>::to_vec).collect::<Vec<_>>()
            },
            |lines, bytes| {
                committed.extend(lines);
                covered += bytes;
                Ok(())
            },
        )
        .unwrap();
        let expected: Vec<Vec<u8>> = text.split('\n').map(|l| l.as_bytes().to_vec()).collect();
        assert_eq!(committed, expected);
        assert_eq!(covered, text.len());
    }

    #[test]
    fn a_read_error_is_returned_and_stops_the_workers() {
        struct Failing(usize);
        impl Read for Failing {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.0 == 0 {
                    return Err(io::Error::other("disk on fire"));
                }
                self.0 -= 1;
                buf[0] = if self.0.is_multiple_of(4) { b'\n' } else { b'a' };
                Ok(1)
            }
        }
        let mut blocks = 0;
        let result = for_each_block_on::<_, _, io::Error>(
            Workers { threads: 3, block: 16 },
            Failing(100),
            |_| (),
            |(), _| {
                blocks += 1;
                Ok(())
            },
        );
        assert_eq!(result.map_err(|e| e.to_string()), Err("disk on fire".to_owned()));
        assert!(blocks <= 100);
    }

    #[test]
    fn a_failing_sink_stops_reading() {
        let text = "x\n".repeat(3 << 20);
        let mut seen = 0;
        let result = for_each_line::<_, io::Error>(
            Workers::all_cores(),
            text.as_bytes(),
            "main",
            |_| {},
            |_, _| {
                seen += 1;
                Err(io::Error::other("enough"))
            },
        );
        assert!(result.is_err());
        assert_eq!(seen, 1);
    }
}
