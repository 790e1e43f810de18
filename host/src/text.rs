//! Text from a plugin is data: before it reaches a terminal, a log or a report, its control
//! characters (ANSI escapes, carriage returns, OSC sequences, C1 controls) and the invisible
//! format characters that reorder or hide text (bidirectional overrides, zero-width ones) are
//! written out as `\u{..}` escapes, so a plugin cannot repaint a line, fake a host message or
//! reach the clipboard.
//! Also the time as opshost writes it: [`now_ms`] and the UTC [`stamp`] of run ids.

use std::borrow::Cow;
use std::time::{SystemTime, UNIX_EPOCH};

/// Plugin text for a place that shows lines: newlines stay, every other control character is escaped.
pub fn printable(s: &str) -> Cow<'_, str> {
    escape(s, |c| c == '\n')
}

/// Plugin text for one field of one line (a plan step's title): every control character is
/// escaped, newlines too.
pub fn one_line(s: &str) -> Cow<'_, str> {
    escape(s, |_| false)
}

/// `s` with every line after the first indented by `indent`: a plugin's text of several lines
/// reads as one message, and none of its lines as one of opshost's own, which start at the
/// margin or under a tag (`run …: upgrade finished`, `  warning: …`).
pub fn continued<'a>(s: &'a str, indent: &str) -> Cow<'a, str> {
    if !s.contains('\n') {
        return Cow::Borrowed(s);
    }
    Cow::Owned(s.replace('\n', &format!("\n{indent}")))
}

/// Whether `c` is written out as an escape: a control character (C0, DEL, C1), or a format
/// character that changes how a line reads without showing itself: bidirectional overrides and
/// isolates (U+202A–U+202E, U+2066–U+2069, the marks U+200E, U+200F, U+061C), which reorder the
/// host's own text beside them, and the zero-width ones (U+200B–U+200D, U+2060, U+FEFF).
fn hidden(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200B}'..='\u{200F}' | '\u{061C}' | '\u{2060}' | '\u{FEFF}')
}

fn escape(s: &str, keep: impl Fn(char) -> bool) -> Cow<'_, str> {
    if !s.chars().any(|c| hidden(c) && !keep(c)) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        if hidden(c) && !keep(c) {
            out.push_str(&c.escape_unicode().to_string());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Milliseconds since the Unix epoch (run records, logs, reports).
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// `YYYYMMDD-HHMMSS` (UTC) for run ids.
pub fn stamp(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86400, secs % 86400);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    format!("{y:04}{m:02}{d:02}-{:02}{:02}{:02}", rem / 3600, rem % 3600 / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lines_after_a_message_s_first_are_indented() {
        assert_eq!(continued("one line", "    "), "one line");
        assert_eq!(continued("done\nrun x: upgrade finished\n", "    "), "done\n    run x: upgrade finished\n    ");
    }

    #[test]
    fn escapes_reach_no_terminal() {
        assert_eq!(printable("plain text\nsecond line"), "plain text\nsecond line");
        assert_eq!(printable("\x1b[1A\x1b[2K[read-only]"), "\\u{1b}[1A\\u{1b}[2K[read-only]");
        assert_eq!(printable("\x1b]52;c;aGk=\x07"), "\\u{1b}]52;c;aGk=\\u{7}");
        assert_eq!(printable("a\rb\u{9b}c"), "a\\u{d}b\\u{9b}c");
        assert_eq!(one_line("title\n  99. fake step"), "title\\u{a}  99. fake step");
        assert!(matches!(printable("nothing to do"), Cow::Borrowed(_)));
        // Bidirectional overrides and zero-width characters reorder or hide text: escaped too;
        // text in a right-to-left script itself is not.
        assert_eq!(printable("ok \u{202E}dehsinif\u{202C} x"), "ok \\u{202e}dehsinif\\u{202c} x");
        assert_eq!(one_line("a\u{200B}b\u{2067}c\u{FEFF}"), "a\\u{200b}b\\u{2067}c\\u{feff}");
        assert_eq!(printable("שלום עליכם"), "שלום עליכם");
    }
}
