//! Text from a plugin is data: before it reaches a terminal, a log or a report, its control
//! characters (ANSI escapes, carriage returns, OSC sequences, C1 controls) are written out as
//! `\u{..}` escapes, so a plugin cannot repaint a line, fake a host message or reach the clipboard.

use std::borrow::Cow;

/// Plugin text for a place that shows lines: newlines stay, every other control character is escaped.
pub fn printable(s: &str) -> Cow<'_, str> {
    escape(s, |c| c == '\n')
}

/// Plugin text for one field of one line (a plan step's title): every control character is
/// escaped, newlines too.
pub fn one_line(s: &str) -> Cow<'_, str> {
    escape(s, |_| false)
}

fn escape(s: &str, keep: impl Fn(char) -> bool) -> Cow<'_, str> {
    if !s.chars().any(|c| c.is_control() && !keep(c)) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        if c.is_control() && !keep(c) {
            out.push_str(&c.escape_unicode().to_string());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_reach_no_terminal() {
        assert_eq!(printable("plain text\nsecond line"), "plain text\nsecond line");
        assert_eq!(printable("\x1b[1A\x1b[2K[read-only]"), "\\u{1b}[1A\\u{1b}[2K[read-only]");
        assert_eq!(printable("\x1b]52;c;aGk=\x07"), "\\u{1b}]52;c;aGk=\\u{7}");
        assert_eq!(printable("a\rb\u{9b}c"), "a\\u{d}b\\u{9b}c");
        assert_eq!(one_line("title\n  99. fake step"), "title\\u{a}  99. fake step");
        assert!(matches!(printable("nothing to do"), Cow::Borrowed(_)));
    }
}
