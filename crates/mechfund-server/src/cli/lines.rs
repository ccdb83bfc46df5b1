//! Reading a log in blocks of whole lines, and parsing blocks on two cores ahead of the fold.
//!
//! Parsing is most of replay's cost and lines are independent: a producer thread reads a block,
//! parses its two halves at once, and hands the parsed lines to the (cheap, sequential) fold in
//! file order while it reads on. Memory is bounded by a few blocks, not by the log.

use std::io::{self, Read};
use std::sync::mpsc::sync_channel;

use mechfund_core::replay::count_lines;
use mechfund_core::{Line, parse_line};

/// Bytes read per block.
const BLOCK: usize = 4 << 20;

/// Calls `block` with consecutive chunks of `reader` that end at a line boundary (or at the end
/// of the input), and `progress` with the bytes each one covered.
///
/// # Errors
/// Read errors, or the first error `block` returns (which stops reading).
pub fn for_each_block<R: Read, E: From<io::Error>>(
    mut reader: R,
    mut block: impl FnMut(&[u8]) -> Result<(), E>,
) -> Result<(), E> {
    let mut buf: Vec<u8> = Vec::with_capacity(BLOCK + (64 << 10));
    let mut eof = false;
    while !eof {
        let start = buf.len();
        buf.resize(start + BLOCK, 0);
        let mut filled = start;
        while filled < buf.len() {
            match reader.read(&mut buf[filled..]) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        buf.truncate(filled);
        let complete = if eof {
            buf.len()
        } else {
            match memchr::memrchr(b'\n', &buf) {
                Some(i) => i + 1,
                // A single line longer than a block: keep reading.
                None => continue,
            }
        };
        if complete > 0 {
            block(&buf[..complete])?;
        }
        buf.drain(..complete);
    }
    Ok(())
}

/// Calls `sink` with every line of `reader` (1-based number, parsed for `mech`), in file order,
/// parsing on other threads ahead of `sink`. `progress` gets the bytes consumed per block.
///
/// # Errors
/// Read errors, or the first error `sink` returns (which stops reading).
pub fn for_each_line<R: Read + Send, E: From<io::Error>>(
    reader: R,
    mech: &str,
    mut progress: impl FnMut(u64),
    mut sink: impl FnMut(u64, &Line) -> Result<(), E>,
) -> Result<(), E> {
    std::thread::scope(|scope| {
        let (tx, rx) = sync_channel::<io::Result<(Vec<Vec<Line>>, usize)>>(2);
        scope.spawn(move || {
            let read = for_each_block(reader, |block| {
                let parsed = parse_block(block, mech);
                // The receiver hangs up when the sink stops early: stop reading too.
                tx.send(Ok((parsed, block.len()))).map_err(|_| io::Error::other("stopped"))
            });
            if let Err(e) = read {
                let _ = tx.send(Err(e));
            }
        });
        let mut line_no = 0u64;
        for message in rx {
            let (parsed, bytes) = message?;
            for line in parsed.iter().flatten() {
                line_no += 1;
                sink(line_no, line)?;
            }
            progress(bytes as u64);
        }
        Ok(())
    })
}

/// Parses every line of `block` (which ends with a newline or at the end of the input), in
/// one or two runs of consecutive lines.
fn parse_block(block: &[u8], mech: &str) -> Vec<Vec<Line>> {
    let body = block.strip_suffix(b"\n").unwrap_or(block);
    let half = body.len() / 2;
    match memchr::memchr(b'\n', &body[half..]).map(|i| half + i) {
        Some(mid) if body.len() > 64 << 10 => {
            let (first, second) = (&body[..mid], &body[mid + 1..]);
            std::thread::scope(|scope| {
                let other = scope.spawn(|| parse_lines(second, mech));
                let lines = parse_lines(first, mech);
                // Parsing never panics; should the thread fail anyway, parse here instead.
                vec![lines, other.join().unwrap_or_else(|_| parse_lines(second, mech))]
            })
        }
        _ => vec![parse_lines(body, mech)],
    }
}

/// Parses the lines of `body` (the last one has no newline; an empty body is one blank line).
fn parse_lines(body: &[u8], mech: &str) -> Vec<Line> {
    // Sized up front: a `Line` is a few hundred bytes, and regrowing would copy them all.
    let mut out = Vec::with_capacity(usize::try_from(count_lines(body)).unwrap_or(0) + 1);
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

    #[test]
    fn a_failing_sink_stops_reading() {
        let text = "x\n".repeat(3 << 20);
        let mut seen = 0;
        let result = for_each_line::<_, io::Error>(
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
