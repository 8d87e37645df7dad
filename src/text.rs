//! Text that comes from outside (names users chose, paths, request lines) on its way
//! into storage, a terminal or a log: free text with control characters is refused at
//! the door, and whatever is printed is escaped, so one record stays one line and no
//! escape sequence reaches a terminal. `--json` output is exact (JSON escapes itself).

use std::borrow::Cow;
use std::fmt::Write;

/// Characters that must never reach a terminal or a log raw: C0 and C1 controls and
/// DEL (`\n`, `\r`, ESC…), the Unicode line and paragraph separators, and the
/// bidirectional overrides that reorder what a reader sees.
pub fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{200e}' | '\u{200f}')
        || ('\u{202a}'..='\u{202e}').contains(&c)
        || ('\u{2066}'..='\u{2069}').contains(&c)
}

/// `Err` with a sentence when `value` holds a character `is_unsafe` refuses.
pub fn check_free_text(what: &str, value: &str) -> Result<(), String> {
    match value.chars().find(|c| is_unsafe(*c)) {
        None => Ok(()),
        Some(c) => Err(format!(
            "{what} must not contain control characters (found U+{:04X}).",
            c as u32
        )),
    }
}

/// `s` for a terminal or a log line: unsafe characters and the backslash written as
/// Rust escapes (`\n`, `\t`, `\r`, `\\`, `\u{1b}`), everything else as it is.
pub fn escape(s: &str) -> Cow<'_, str> {
    if !s.chars().any(|c| c == '\\' || is_unsafe(c)) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if is_unsafe(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaped_text_is_one_line_without_escape_sequences() {
        let forged = "ci\n2026-12-01T00:41:00Z  cli:root  user.delete  alice\u{1b}[8m";
        let shown = escape(forged);
        assert_eq!(
            shown,
            "ci\\n2026-12-01T00:41:00Z  cli:root  user.delete  alice\\u{1b}[8m"
        );
        assert!(!shown.chars().any(is_unsafe));
        assert_eq!(
            escape("a\\nb\r\t\u{7f}\u{9b}\u{202e}"),
            "a\\\\nb\\r\\t\\u{7f}\\u{9b}\\u{202e}"
        );
        assert!(matches!(escape("plain name é"), Cow::Borrowed(_)));
    }

    #[test]
    fn free_text_with_control_characters_is_refused() {
        assert!(check_free_text("The name", "backup daemon (é)").is_ok());
        for bad in [
            "a\nb",
            "\u{1b}[2J",
            "x\u{0}",
            "tab\there",
            "\u{2028}",
            "\u{202e}gnp.exe",
        ] {
            let e = check_free_text("The name", bad).unwrap_err();
            assert!(
                e.starts_with("The name must not contain control characters"),
                "{e}"
            );
        }
    }
}
