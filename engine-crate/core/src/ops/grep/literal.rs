//! The literal every match of a pattern must contain, used to find
//! candidate lines before the regex runs.
//!
//! The regex crate finds its own literals when a match starts or ends with
//! one (`timeout`, `error|refused`), but not one in the middle: for
//! `[0-9]{4}-[0-9]{2}-3[01]` it runs its automaton over every byte. Like
//! GNU grep and ripgrep, the search then looks for the required inner
//! literal (`-3`) with `memchr::memmem` and runs the regex only on the lines
//! that hold it.

use regex_syntax::hir::{Hir, HirKind};
use regex_syntax::ParserBuilder;

/// Shorter literals are too common to narrow the search.
const MIN_LEN: usize = 2;

/// The longest literal that every match contains, when the pattern is not
/// simply that literal (which the regex crate already searches for best)
/// and the literal is at least [`MIN_LEN`] bytes long.
pub fn required_inner(pattern: &str, ignore_case: bool) -> Option<Vec<u8>> {
    let hir = ParserBuilder::new().case_insensitive(ignore_case).multi_line(true).utf8(false).build().parse(pattern).ok()?;
    if matches!(hir.kind(), HirKind::Literal(_)) {
        return None;
    }
    required(&hir).filter(|l| l.len() >= MIN_LEN)
}

/// The longest literal every match of `hir` contains.
fn required(hir: &Hir) -> Option<Vec<u8>> {
    match hir.kind() {
        HirKind::Literal(l) => Some(l.0.to_vec()),
        HirKind::Capture(c) => required(&c.sub),
        HirKind::Repetition(r) if r.min >= 1 => required(&r.sub),
        HirKind::Concat(parts) => parts.iter().filter_map(required).max_by_key(Vec::len),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inner(pattern: &str) -> Option<String> {
        required_inner(pattern, false).map(|l| String::from_utf8(l).unwrap())
    }

    #[test]
    fn finds_the_longest_required_literal() {
        assert_eq!(inner("[0-9]{4}-[0-9]{2}-3[01]").as_deref(), Some("-3"));
        assert_eq!(inner(r"\d+ (error) code=\d+").as_deref(), Some(" code="));
        assert_eq!(inner(r"^x(ab)+\s").as_deref(), Some("ab"));
    }

    #[test]
    fn no_literal_when_the_regex_crate_does_better_or_none_is_required() {
        assert_eq!(inner("timeout"), None);
        assert_eq!(inner("error|timeout|refused"), None);
        assert_eq!(inner(r"[0-9]+-[0-9]"), None);
        assert_eq!(inner("(ab)?cd*"), None);
        assert_eq!(inner("("), None);
    }

    #[test]
    fn letters_under_ignore_case_are_not_literals() {
        assert_eq!(required_inner(r"\d+abc\d", true), None);
        assert_eq!(required_inner(r"\d+-3\d", true).as_deref(), Some(&b"-3"[..]));
    }
}
