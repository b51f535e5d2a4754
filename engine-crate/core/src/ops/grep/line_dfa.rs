//! Checking a candidate line with a DFA built once for the pattern.
//!
//! Once the required literal has picked a line, the regex crate's
//! `is_match` on that short haystack takes its reverse-inner path, and when
//! its lazy DFA gives up there, the PikeVM and the backtracker: about half
//! of the time of a character-class grep in the profile. A dense DFA needs
//! no cache, is shared by every thread and reads each byte of the line once.

use regex_automata::dfa::{dense, Automaton};
use regex_automata::util::syntax;
use regex_automata::Input;

/// Patterns whose DFA would be bigger are checked by the regex crate.
const SIZE_LIMIT: usize = 4 << 20;

#[derive(Debug, Clone)]
pub struct LineDfa(dense::DFA<Vec<u32>>);

impl LineDfa {
    /// None when a DFA cannot express the pattern (a Unicode word boundary)
    /// or would be too big; the same syntax settings as the grep regex.
    pub fn new(pattern: &str, ignore_case: bool) -> Option<Self> {
        dense::Builder::new()
            .syntax(syntax::Config::new().case_insensitive(ignore_case).multi_line(true))
            .configure(dense::Config::new().dfa_size_limit(Some(SIZE_LIMIT)).determinize_size_limit(Some(SIZE_LIMIT)))
            .build(pattern)
            .ok()
            .map(LineDfa)
    }

    /// Whether the pattern matches within `line`; None if the DFA had to
    /// stop (the caller then asks the regex).
    pub fn is_match(&self, line: &[u8]) -> Option<bool> {
        self.0.try_search_fwd(&Input::new(line).earliest(true)).ok().map(|m| m.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use regex::bytes::RegexBuilder;

    #[test]
    fn agrees_with_the_regex_on_each_line() {
        let lines: &[&[u8]] = &[b"2024-03-31 x", b"2024-3-31", b"id 1999-12-30", b"a-3", b"", b"\xff2024-01-30\xfe", b"2024-01-3"];
        for (pattern, ignore_case) in [("[0-9]{4}-[0-9]{2}-3[01]", false), ("^a-3$", false), ("A-3", true), (r"\d+-3", false)] {
            let dfa = LineDfa::new(pattern, ignore_case).unwrap();
            let regex = RegexBuilder::new(pattern).case_insensitive(ignore_case).multi_line(true).build().unwrap();
            for line in lines {
                assert_eq!(dfa.is_match(line), Some(regex.is_match(line)), "{pattern} on {:?}", String::from_utf8_lossy(line));
            }
        }
    }

    #[test]
    fn unicode_word_boundaries_are_left_to_the_regex() {
        assert!(LineDfa::new(r"\bab-3", false).is_none());
    }
}
