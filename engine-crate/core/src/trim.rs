//! Leaving out a content's first and last lines (a preamble before a CSV
//! header, a footer after its rows) while it streams: the last lines are
//! held back until the content ends, so only they are ever buffered.
//!
//! A line ends at `\n`; a last line without one is a line too.

use std::io::{self, Read};

/// Bytes asked of the inner reader at a time.
const READ: usize = 256 << 10;

/// `inner` without its first `skip` and its last `footer` lines.
pub struct Trimmed<R> {
    inner: R,
    skip: u64,
    footer: u64,
    held: Vec<u8>,
    /// `held[out..ready]` can be handed out: no footer line is in it.
    out: usize,
    ready: usize,
    ended: bool,
}

impl<R: Read> Trimmed<R> {
    pub fn new(inner: R, skip: u64, footer: u64) -> Self {
        Trimmed { inner, skip, footer, held: Vec::new(), out: 0, ready: 0, ended: false }
    }

    /// Drops the lines still to skip from the front of `held`.
    fn skip_lines(&mut self) {
        while self.skip > 0 {
            match memchr::memchr(b'\n', &self.held) {
                Some(p) => {
                    self.held.drain(..=p);
                    self.skip -= 1;
                }
                None => {
                    // The rest of `held` belongs to a skipped line.
                    self.held.clear();
                    return;
                }
            }
        }
    }

    /// What may be handed out while more may come: up to the newline with
    /// `footer` newlines after it.
    fn ready_while_reading(&self) -> usize {
        if self.skip > 0 {
            return 0;
        }
        if self.footer == 0 {
            return self.held.len();
        }
        memchr::memrchr_iter(b'\n', &self.held).nth(self.footer as usize).map_or(0, |p| p + 1)
    }

    /// What is handed out once the content has ended: all but the last
    /// `footer` lines.
    fn ready_at_end(&self) -> usize {
        let mut end = self.held.len();
        let mut left = self.footer;
        if self.skip > 0 {
            return 0;
        }
        if left > 0 && end > 0 && self.held[end - 1] != b'\n' {
            end = memchr::memrchr(b'\n', &self.held).map_or(0, |p| p + 1);
            left -= 1;
        }
        while left > 0 && end > 0 {
            end = memchr::memrchr(b'\n', &self.held[..end - 1]).map_or(0, |p| p + 1);
            left -= 1;
        }
        end
    }
}

impl<R: Read> Read for Trimmed<R> {
    fn read(&mut self, dst: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.out < self.ready {
                let n = dst.len().min(self.ready - self.out);
                dst[..n].copy_from_slice(&self.held[self.out..self.out + n]);
                self.out += n;
                return Ok(n);
            }
            if self.ended {
                return Ok(0);
            }
            self.held.drain(..self.out);
            self.out = 0;
            let before = self.held.len();
            self.held.resize(before + READ, 0);
            let got = match self.inner.read(&mut self.held[before..]) {
                Ok(n) => n,
                Err(e) => {
                    self.held.truncate(before);
                    return Err(e);
                }
            };
            self.held.truncate(before + got);
            self.skip_lines();
            if got == 0 {
                self.ended = true;
                self.ready = self.ready_at_end();
            } else {
                self.ready = self.ready_while_reading();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference: the content's lines, cut at both ends.
    fn expected(text: &str, skip: usize, footer: usize) -> String {
        let lines: Vec<&str> = text.split_inclusive('\n').collect();
        let end = lines.len().saturating_sub(footer);
        lines.get(skip.min(end)..end).map_or(String::new(), |l| l.concat())
    }

    /// Hands out at most `step` bytes per read, to cross every boundary.
    struct Trickle<'a>(&'a [u8], usize);

    impl Read for Trickle<'_> {
        fn read(&mut self, dst: &mut [u8]) -> io::Result<usize> {
            let n = self.1.min(self.0.len()).min(dst.len());
            dst[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn first_and_last_lines_are_left_out() {
        for text in ["", "a", "a\n", "a\nb", "a\nb\n", "pre\npre\nh\n1\n2\nfoot\n\n", "x\n\n\ny\nz", "\n\n"] {
            for skip in 0..4 {
                for footer in 0..4 {
                    for step in [1, 2, 7, 1 << 20] {
                        let mut got = String::new();
                        Trimmed::new(Trickle(text.as_bytes(), step), skip, footer).read_to_string(&mut got).unwrap();
                        assert_eq!(got, expected(text, skip as usize, footer as usize), "{text:?} skip {skip} footer {footer} step {step}");
                    }
                }
            }
        }
    }

    #[test]
    fn long_content_streams_through() {
        let text: String = (0..100_000).map(|i| format!("row {i}\n")).collect();
        let mut got = String::new();
        Trimmed::new(text.as_bytes(), 3, 2).read_to_string(&mut got).unwrap();
        assert_eq!(got, expected(&text, 3, 2));
    }
}
