//! The fast path for the common NDJSON line.
//!
//! Most lines of a JSON lines file are plain: no control bytes, keys without
//! escapes, numbers already in their shortest form. For those, this scanner
//! hands the accumulators the text of each leaf straight from the line,
//! where serde_json would build every number as a value that then has to be
//! written back as text. Anything it does not know for certain (a number
//! that is not in shortest form, a string with escapes, deep nesting) goes
//! to serde_json for that one value; anything wrong with the line makes it
//! give up ([`Unsure`]) so that the line is parsed again by serde_json, which
//! accepts it or says exactly why not. So a line this scanner accepts is one
//! serde_json accepts, with the same leaves.

use serde::de::{DeserializeSeed, IgnoredAny};

use super::super::sketch::same_bytes;
use super::{push_key, Kind, LeafValue, Leaves, LineLeaves};

/// The line is not one this scanner vouches for; serde_json decides.
#[derive(Debug)]
pub(super) struct Unsure;

/// Nesting beyond which serde_json takes over (its own limit is 128).
const MAX_DEPTH: usize = 64;

/// Collects the leaves of `line`, a trimmed line that starts with `{`.
pub(super) fn scan_object<'b>(line: &'b [u8], leaves: &mut LineLeaves<'b>, path: &mut String) -> Result<(), Unsure> {
    let text = plain_text(line).ok_or(Unsure)?;
    let mut scanner = Scanner { text, at: 0 };
    scanner.object(leaves, path, 0)?;
    if scanner.at == text.len() {
        Ok(())
    } else {
        Err(Unsure)
    }
}

/// The line as text when it is valid UTF-8 without control bytes: inside a
/// string those are errors, outside one only tabs and carriage returns
/// would be allowed, and a line holding any is left to serde_json.
fn plain_text(line: &[u8]) -> Option<&str> {
    // One pass finds bytes below 0x20 and above 0x7F alike: as signed
    // bytes both are less than 0x20.
    let unusual = line.iter().fold(false, |seen, &b| seen | ((b as i8) < 0x20));
    if !unusual {
        // SAFETY: every byte is ASCII, so the line is valid UTF-8.
        return Some(unsafe { std::str::from_utf8_unchecked(line) });
    }
    if line.iter().any(|&b| b < 0x20) {
        return None;
    }
    std::str::from_utf8(line).ok()
}

/// The index of the first `"` or `\` in `bytes`, eight bytes at a time:
/// most strings are short, where `memchr` spends more on setting up than
/// on searching.
fn quote_or_backslash(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_ne_bytes([1; 8]);
    const HIGHS: u64 = ONES << 7;
    let zero_bytes = |w: u64| w.wrapping_sub(ONES) & !w & HIGHS;
    let mut at = 0;
    while let Some(word) = bytes.get(at..at + 8) {
        let w = u64::from_le_bytes(word.try_into().expect("eight bytes"));
        // The lowest flagged byte of each mask is exact (only bytes above a
        // match can be flagged wrongly), so the lowest of both is too.
        let found = zero_bytes(w ^ (ONES * b'"' as u64)) | zero_bytes(w ^ (ONES * b'\\' as u64));
        if found != 0 {
            return Some(at + found.trailing_zeros() as usize / 8);
        }
        at += 8;
    }
    bytes[at..].iter().position(|&b| b == b'"' || b == b'\\').map(|n| at + n)
}

/// Whether a number's text is what serde_json reading it and the engine
/// writing it back (`itoa`, or Rust's shortest round-trip digits) give.
/// Integers of up to 18 digits are read exactly and written as they are.
/// A decimal without exponent, with up to 15 significant digits and at most
/// 22 after the point (so that it is one exact division by an exact power of
/// ten, correctly rounded) and no trailing zero is the shortest text of its
/// double: two such decimals never round to the same double.
fn is_shortest(int: &[u8], frac: &[u8]) -> bool {
    if frac.is_empty() {
        return int.len() <= 18;
    }
    let significant = if int == b"0" {
        frac.len() - frac.iter().take_while(|&&b| b == b'0').count()
    } else {
        int.len() + frac.len()
    };
    frac.len() <= 22 && significant <= 15 && frac[frac.len() - 1] != b'0'
}

struct Scanner<'b> {
    text: &'b str,
    at: usize,
}

impl<'b> Scanner<'b> {
    fn bytes(&self) -> &'b [u8] {
        self.text.as_bytes()
    }

    /// The byte at the cursor, or 0 at the end (never valid JSON there).
    fn peek(&self) -> u8 {
        self.bytes().get(self.at).copied().unwrap_or(0)
    }

    fn skip_spaces(&mut self) {
        while self.peek() == b' ' {
            self.at += 1;
        }
    }

    fn expect(&mut self, b: u8) -> Result<(), Unsure> {
        self.skip_spaces();
        if self.peek() != b {
            return Err(Unsure);
        }
        self.at += 1;
        Ok(())
    }

    /// Moves past the string at the cursor; returns its content and whether
    /// it holds escapes (then the content is the raw, still escaped text).
    fn string(&mut self) -> Result<(&'b str, bool), Unsure> {
        let start = self.at + 1;
        let mut at = start;
        let mut escaped = false;
        loop {
            let rest = self.bytes().get(at..).ok_or(Unsure)?;
            match quote_or_backslash(rest) {
                Some(n) if rest[n] == b'"' => {
                    self.at = at + n + 1;
                    return Ok((&self.text[start..at + n], escaped));
                }
                Some(n) => {
                    escaped = true;
                    at += n + 2;
                }
                None => return Err(Unsure),
            }
        }
    }

    /// An object's fields, each value under `path.key` (under `key` at the
    /// top level, where `path` is empty).
    fn object(&mut self, leaves: &mut LineLeaves<'b>, path: &mut String, depth: usize) -> Result<(), Unsure> {
        self.members(b'}', depth, |scanner| {
            if scanner.peek() != b'"' {
                return Err(Unsure);
            }
            let predicted = if depth == 0 { scanner.predicted_key(leaves) } else { None };
            let key = match predicted {
                Some(key) => key,
                None => match scanner.string()? {
                    (key, false) => key,
                    (_, true) => return Err(Unsure),
                },
            };
            scanner.expect(b':')?;
            scanner.skip_spaces();
            scanner.value(leaves, path, key, predicted.is_some(), depth)
        })
    }

    /// Moves past the members of the object or array at the cursor, each
    /// through `member`, up to `close`.
    fn members(&mut self, close: u8, depth: usize, mut member: impl FnMut(&mut Self) -> Result<(), Unsure>) -> Result<(), Unsure> {
        if depth > MAX_DEPTH {
            return Err(Unsure);
        }
        self.at += 1;
        self.skip_spaces();
        if self.peek() == close {
            self.at += 1;
            return Ok(());
        }
        loop {
            self.skip_spaces();
            member(self)?;
            self.skip_spaces();
            match self.peek() {
                b',' => self.at += 1,
                b if b == close => {
                    self.at += 1;
                    return Ok(());
                }
                _ => return Err(Unsure),
            }
        }
    }

    /// Moves past the key at the cursor when it is the one the last line
    /// added had for the leaf that comes next (one comparison instead of a
    /// search for the closing quote).
    fn predicted_key(&mut self, leaves: &LineLeaves<'b>) -> Option<&'b str> {
        let key = (*leaves.previous.get(leaves.leaves.len())?)?;
        let (from, to) = (self.at + 1, self.at + 1 + key.len());
        let here = self.bytes().get(from..to + 1)?;
        if here[key.len()] == b'"' && same_bytes(&here[..key.len()], key.as_bytes()) {
            self.at = to + 1;
            Some(key)
        } else {
            None
        }
    }

    /// The value of field `key` of the object at `path`, as leaves; `known`:
    /// the key is the predicted one.
    fn value(&mut self, leaves: &mut LineLeaves<'b>, path: &mut String, key: &'b str, known: bool, depth: usize) -> Result<(), Unsure> {
        let start = self.at;
        let (kind, value) = match self.peek() {
            b'"' => {
                let (content, escaped) = self.string()?;
                if escaped {
                    return self.by_serde(start, leaves, path, key);
                }
                (Kind::String, LeafValue::Borrowed(content.as_bytes()))
            }
            b'{' => {
                let len = path.len();
                push_key(path, key);
                self.object(leaves, path, depth + 1)?;
                path.truncate(len);
                return Ok(());
            }
            b'[' => {
                let n = self.array(depth + 1)?;
                (Kind::Array, leaves.copy(itoa::Buffer::new().format(n).as_bytes()))
            }
            b't' => (Kind::Boolean, LeafValue::Borrowed(self.literal(b"true")?)),
            b'f' => (Kind::Boolean, LeafValue::Borrowed(self.literal(b"false")?)),
            // A null's value is empty, like an empty cell.
            b'n' => (Kind::Null, LeafValue::Borrowed(&self.literal(b"null")?[..0])),
            _ => {
                if !self.number()? {
                    return self.by_serde(start, leaves, path, key);
                }
                (Kind::Number, LeafValue::Borrowed(&self.bytes()[start..self.at]))
            }
        };
        leaves.push_under(path, key, known, kind, value);
        Ok(())
    }

    /// Moves past `word` (`true`, `false` or `null`) and returns it.
    fn literal(&mut self, word: &'static [u8]) -> Result<&'static [u8], Unsure> {
        if !self.bytes()[self.at..].starts_with(word) {
            return Err(Unsure);
        }
        self.at += word.len();
        Ok(word)
    }

    /// Moves past a number (JSON's grammar); says whether its text is the
    /// one the engine would write for it.
    fn number(&mut self) -> Result<bool, Unsure> {
        let b = self.bytes();
        let mut at = self.at;
        if b.get(at) == Some(&b'-') {
            at += 1;
        }
        let digits = |from: usize| b[from..].iter().take_while(|c| c.is_ascii_digit()).count();
        let int_digits = match b.get(at) {
            Some(b'0') => 1,
            Some(b'1'..=b'9') => digits(at),
            _ => return Err(Unsure),
        };
        let int = &b[at..at + int_digits];
        at += int_digits;
        let mut frac: &[u8] = &[];
        if b.get(at) == Some(&b'.') {
            let n = digits(at + 1);
            if n == 0 {
                return Err(Unsure);
            }
            frac = &b[at + 1..at + 1 + n];
            at += 1 + n;
        }
        let mut exponent = false;
        if matches!(b.get(at), Some(b'e' | b'E')) {
            exponent = true;
            at += 1;
            if matches!(b.get(at), Some(b'+' | b'-')) {
                at += 1;
            }
            let n = digits(at);
            if n == 0 {
                return Err(Unsure);
            }
            at += n;
        }
        self.at = at;
        Ok(!exponent && is_shortest(int, frac))
    }

    /// Moves past an array, checking its elements; returns their number.
    fn array(&mut self, depth: usize) -> Result<u64, Unsure> {
        let mut n = 0;
        self.members(b']', depth, |scanner| {
            n += 1;
            scanner.skip_value(depth)
        })?;
        Ok(n)
    }

    /// Moves past a value inside an array, checking it as serde_json does
    /// when it ignores one (numbers by their grammar only).
    fn skip_value(&mut self, depth: usize) -> Result<(), Unsure> {
        match self.peek() {
            b'"' => self.skip_string(),
            b'{' => self.members(b'}', depth + 1, |scanner| {
                if scanner.peek() != b'"' {
                    return Err(Unsure);
                }
                scanner.skip_string()?;
                scanner.expect(b':')?;
                scanner.skip_spaces();
                scanner.skip_value(depth + 1)
            }),
            b'[' => self.array(depth + 1).map(drop),
            b't' => self.literal(b"true").map(drop),
            b'f' => self.literal(b"false").map(drop),
            b'n' => self.literal(b"null").map(drop),
            _ => self.number().map(drop),
        }
    }

    /// Moves past a string; one with escapes is checked by serde_json.
    fn skip_string(&mut self) -> Result<(), Unsure> {
        let start = self.at;
        let (_, escaped) = self.string()?;
        if escaped {
            serde_json::from_str::<IgnoredAny>(&self.text[start..self.at]).map_err(|_| Unsure)?;
        }
        Ok(())
    }

    /// The value from `start` to the cursor, read by serde_json as the
    /// whole-line parse would read it.
    fn by_serde(&mut self, start: usize, leaves: &mut LineLeaves<'b>, path: &mut String, key: &str) -> Result<(), Unsure> {
        let token = &self.text[start..self.at];
        let len = path.len();
        push_key(path, key);
        let mut parser = serde_json::Deserializer::from_str(token);
        let read = Leaves { line: leaves, path }.deserialize(&mut parser).and_then(|()| parser.end());
        path.truncate(len);
        read.map_err(|_| Unsure)
    }
}

#[cfg(test)]
mod tests {
    use super::super::super::StatsOp;
    use super::super::{parse_chunk, parse_with_serde, JsonChunk, Kind, Leaf, LineLeaves};
    use super::{quote_or_backslash, scan_object};
    use proptest::prelude::*;

    /// Each leaf as (path, kind, value).
    fn leaves_of(leaves: &LineLeaves) -> Vec<(String, String, Vec<u8>)> {
        let each = |leaf: &Leaf| (leaf.path(&leaves.paths).to_string(), format!("{:?}", leaf.kind), leaf.value(&leaves.text).to_vec());
        leaves.leaves.iter().map(each).collect()
    }

    /// The scanner's leaves, or None when it is unsure.
    fn scanned(line: &[u8]) -> Option<Vec<(String, String, Vec<u8>)>> {
        let mut leaves = LineLeaves::default();
        scan_object(line, &mut leaves, &mut String::new()).ok()?;
        Some(leaves_of(&leaves))
    }

    fn by_serde(line: &[u8]) -> Result<Vec<(String, String, Vec<u8>)>, String> {
        let mut leaves = LineLeaves::default();
        parse_with_serde(line, &mut leaves, &mut String::new())?;
        Ok(leaves_of(&leaves))
    }

    fn leaf(path: &str, kind: &str, value: &str) -> (String, String, Vec<u8>) {
        (path.into(), kind.into(), value.as_bytes().to_vec())
    }

    #[test]
    fn plain_lines_are_scanned_with_each_value_as_the_engine_writes_it() {
        let plain = br#"{"id":7,"amount":-2829.91,"ok":false,"gone":null,"at":{"day":"2022-12-13","n":[1,{"x":[]},"s"]},"e":{}}"#;
        // Values not in the engine's form go through serde_json one by one.
        let unusual = br#"{"a": 1.50, "b": 1e3, "c": "x\"y\u00e9", "d": 12345678901234567890, "e": 0.1000000000000000055511151231257827}"#;
        for (line, expected) in [
            (&plain[..], vec![("id", "Number", "7"), ("amount", "Number", "-2829.91"), ("ok", "Boolean", "false"),
                              ("gone", "Null", ""), ("at.day", "String", "2022-12-13"), ("at.n", "Array", "3")]),
            (&unusual[..], vec![("a", "Number", "1.5"), ("b", "Number", "1000"), ("c", "String", "x\"y\u{e9}"),
                                ("d", "Number", "12345678901234567890"), ("e", "Number", "0.1")]),
        ] {
            let expected = expected.into_iter().map(|(p, k, v)| leaf(p, k, v)).collect();
            assert_eq!(scanned(line), Some(expected));
        }
    }

    #[test]
    fn the_scanner_leaves_what_it_cannot_vouch_for_to_serde() {
        for line in [
            &br#"{"a":1,}"#[..],
            br#"{"a":01}"#,
            br#"{"a":1.}"#,
            br#"{"a":-}"#,
            br#"{"a":tru}"#,
            br#"{"a":"x}"#,
            br#"{"a":1}x"#,
            br#"{"a\"b":1}"#,
            b"{\"a\":\t1}",
            b"{\"a\":\"\x01\"}",
            br#"{"a":[1 2]}"#,
            br#"{"a":1e400}"#,
            b"{\"a\":\"\xff\"}",
        ] {
            assert_eq!(scanned(line), None, "{}", String::from_utf8_lossy(line));
        }
    }

    #[test]
    fn a_predicted_key_must_end_where_the_last_lines_key_did() {
        let op = StatsOp::from_options("{}").unwrap();
        // `a::1,` is the second line's key, and the line is bad; a prediction
        // of `a` that ignored the quote would read it as `"a":1,"x":2`.
        let chunk = parse_chunk(&op, b"{\"a\":1}\n{\"a::1,\"x\":2}\n", true);
        assert_eq!(chunk.rows, 1);
        assert_eq!(chunk.bad.iter().map(|(line, _)| *line).collect::<Vec<_>>(), [2]);
    }

    #[test]
    fn quote_or_backslash_finds_the_first_of_either_at_every_offset() {
        for len in 0..40 {
            for at in 0..len {
                for (mark, other) in [(b'"', b'\\'), (b'\\', b'"')] {
                    let mut bytes = vec![b'a'; len];
                    bytes[at] = mark;
                    // A later match of the other byte must not hide this one.
                    if at + 1 < len {
                        bytes[len - 1] = other;
                    }
                    assert_eq!(quote_or_backslash(&bytes), Some(at), "{len} {at}");
                }
            }
            assert_eq!(quote_or_backslash(&vec![b'a'; len]), None);
        }
    }

    /// JSON texts of every shape, numbers written in any valid way.
    fn json_value() -> impl Strategy<Value = String> {
        let number = "-?(0|[1-9][0-9]{0,20})(\\.[0-9]{1,24})?([eE][+-]?[0-9]{1,3})?";
        let string = proptest::collection::vec(
            prop_oneof![Just("a"), Just("Zz"), Just(" "), Just("\\\""), Just("\\\\"), Just("\\n"), Just("\\/"),
                        Just("\\u00e9"), Just("\\ud83d\\ude00"), Just("\u{e9}"), Just(","), Just(":"), Just("}")],
            0..5,
        )
        .prop_map(|parts| format!("\"{}\"", parts.concat()));
        let leaf = prop_oneof![number.prop_map(String::from), string, Just("true".into()), Just("false".into()), Just("null".into())];
        leaf.prop_recursive(4, 32, 5, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(|items| format!("[{}]", items.join(", "))),
                proptest::collection::vec(("(a|b|a.b|)", inner), 0..4).prop_map(|fields| {
                    let fields: Vec<String> = fields.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
                    format!("{{{}}}", fields.join(","))
                }),
            ]
        })
    }

    fn json_object_line() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(("[a-c]{1,2}", json_value()), 0..5).prop_map(|fields| {
            let fields: Vec<String> = fields.iter().map(|(k, v)| format!("\"{k}\": {v}")).collect();
            format!("{{{}}}", fields.join(",")).into_bytes()
        })
    }

    /// Rows of the same keys with values of any shape, now and then one
    /// with a field left out or a byte changed.
    fn json_lines() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec("[a-c]{1,2}", 1..5)
            .prop_flat_map(|keys| {
                let n = keys.len();
                let row = (proptest::collection::vec(json_value(), n), 0..n + 3, any::<prop::sample::Index>(), 0..8u8);
                (Just(keys), proptest::collection::vec(row, 1..10))
            })
            .prop_map(|(keys, rows)| {
                let mut text = Vec::new();
                for (values, left_out, at, damage) in rows {
                    let fields: Vec<String> = (keys.iter().zip(&values).enumerate())
                        .filter(|(i, _)| *i != left_out)
                        .map(|(_, (k, v))| format!("\"{k}\":{v}"))
                        .collect();
                    let mut line = format!("{{{}}}", fields.join(",")).into_bytes();
                    if damage == 0 {
                        let i = at.index(line.len());
                        line[i] = b'"';
                    }
                    text.extend_from_slice(&line);
                    text.push(b'\n');
                }
                text
            })
    }

    /// What `parse_chunk` should make of `text`: each line read by serde_json
    /// alone, its leaves added to the columns of their paths.
    fn by_serde_line_by_line(op: &StatsOp, text: &[u8]) -> JsonChunk {
        let mut chunk = JsonChunk::default();
        for (i, line) in text.split(|&b| b == b'\n').enumerate().filter(|(_, l)| !l.is_empty()) {
            match by_serde(line) {
                Ok(leaves) => {
                    chunk.rows += 1;
                    for (path, kind, value) in leaves {
                        let column = chunk.column_index(op, &path);
                        let kind = ["Null", "Boolean", "Number", "String", "Array"].iter().position(|k| *k == kind).unwrap();
                        let kind = [Kind::Null, Kind::Boolean, Kind::Number, Kind::String, Kind::Array][kind];
                        chunk.add_leaf(column, kind, &value);
                    }
                }
                Err(reason) => chunk.bad.push((i as u64 + 1, reason)),
            }
        }
        for (_, c) in &mut chunk.columns {
            c.acc.flush();
        }
        chunk
    }

    fn summary(chunk: &JsonChunk) -> (u64, Vec<(u64, String)>, Vec<String>) {
        let columns = chunk.columns.iter().map(|(name, c)| format!("{:?} {}", c.kinds, c.acc.result(name, &[0.5], 5))).collect();
        (chunk.rows, chunk.bad.clone(), columns)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn a_chunk_gives_the_columns_serde_gives_line_by_line(text in json_lines()) {
            let op = StatsOp::from_options("{}").unwrap();
            prop_assert_eq!(summary(&parse_chunk(&op, &text, true)), summary(&by_serde_line_by_line(&op, &text)));
        }

        #[test]
        fn a_line_the_scanner_accepts_is_one_serde_reads_the_same(line in json_object_line()) {
            let serde = by_serde(&line);
            if let Some(fast) = scanned(&line) {
                prop_assert_eq!(Ok(fast), serde);
            }
        }

        #[test]
        fn a_damaged_line_the_scanner_accepts_is_one_serde_reads_the_same(
            line in json_object_line(),
            at in any::<prop::sample::Index>(),
            byte in prop::sample::select(&b"\"\\,:{}[]0.e- \t\x01\xff"[..]),
            how in 0..3u8,
        ) {
            let mut line = line;
            let i = at.index(line.len());
            match how {
                0 => line[i] = byte,
                1 => line.insert(i, byte),
                _ => { line.remove(i); }
            }
            if line.first() == Some(&b'{') {
                if let Some(fast) = scanned(&line) {
                    prop_assert_eq!(Ok(fast), by_serde(&line));
                }
            }
        }
    }
}
