//! Reading a log's lines in blocks and parsing each block on two cores.
//!
//! Parsing is most of replay's cost, and lines are independent, so each block is split at a line
//! boundary and both halves are parsed at once; the results are then handed to the (cheap,
//! sequential) fold in file order. Memory is bounded by the block size, not the log size.

use std::io::{self, Read};

use mechfund_core::{Line, parse_line};

/// Bytes read per block.
const BLOCK: usize = 4 << 20;

/// Calls `sink` with every line of `reader` (1-based number, parsed for `mech`), in file order.
/// `progress` is told how many bytes were consumed after each block.
///
/// # Errors
/// Read errors, or the first error `sink` returns (which stops reading).
pub fn for_each_line<R: Read, E: From<io::Error>>(
    mut reader: R,
    mech: &str,
    mut progress: impl FnMut(u64),
    mut sink: impl FnMut(u64, Line) -> Result<(), E>,
) -> Result<(), E> {
    let mut buf: Vec<u8> = Vec::with_capacity(BLOCK + (64 << 10));
    let mut line_no = 0u64;
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
        for parsed in parse_block(&buf[..complete], mech) {
            line_no += 1;
            sink(line_no, parsed)?;
        }
        progress(complete as u64);
        buf.drain(..complete);
    }
    Ok(())
}

/// Parses every line of `block` (which ends with a newline or at the end of the input).
fn parse_block(block: &[u8], mech: &str) -> Vec<Line> {
    let body = block.strip_suffix(b"\n").unwrap_or(block);
    if block.is_empty() {
        return Vec::new();
    }
    let split = memchr::memchr(b'\n', &body[body.len() / 2..]).map(|i| body.len() / 2 + i);
    match split {
        Some(mid) if body.len() > 64 << 10 => {
            let (first, second) = (&body[..mid], &body[mid + 1..]);
            std::thread::scope(|scope| {
                let other = scope.spawn(|| parse_lines(second, mech));
                let mut lines = parse_lines(first, mech);
                // A parse never panics; if the thread somehow did, parse here instead.
                lines.extend(other.join().unwrap_or_else(|_| parse_lines(second, mech)));
                lines
            })
        }
        _ => parse_lines(body, mech),
    }
}

fn parse_lines(body: &[u8], mech: &str) -> Vec<Line> {
    body.split(|&b| b == b'\n')
        .map(|line| parse_line(line.strip_suffix(b"\r").unwrap_or(line), mech))
        .collect()
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
                out.push((n, l));
                Ok(())
            },
        )
        .unwrap();
        out
    }

    #[test]
    fn numbers_lines_like_the_core() {
        for text in [&b""[..], b"a", b"a\n", b"a\n\n", b"\n\na\r\nb", b"x\ny\n"] {
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
}
