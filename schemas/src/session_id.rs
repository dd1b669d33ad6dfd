//! SSM session ids: `<principal>-<suffix>`, where the principal may itself contain `-`.

/// A session id split into the principal part and the suffix SSM appends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionIdParts<'a> {
    /// The IAM user or role-session name that started the session.
    pub principal: &'a str,
    /// 17 hex digits (older sessions) or 26 `[a-z0-9]` (newer ones).
    pub suffix: &'a str,
}

/// Longest session id the SSM API allows.
pub const MAX_SESSION_ID_LEN: usize = 96;

/// Returns whether `id` can be a session id: 1 to 96 characters of those an IAM user or role
/// session name may hold (ASCII letters and digits, `_ + = , . @ -`), which SSM puts before the
/// suffix. Anything else (`%`, `/`, `..`, NUL, newlines, invisible or bidirectional
/// characters, other non-ASCII) is refused: such a name could be read back as another object
/// name by a store or a query engine (`q%2Fr`), break a query of the whole lake
/// (`x%2F%2e%2e%2Fy`), inject log lines, or make two sessions look the same.
pub fn is_valid(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_SESSION_ID_LEN
        && id != "."
        && id != ".."
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"_+=,.@-".contains(&b))
}

/// Returns a name a source chose (an object key, a principal, a target, a session id) as it is
/// printed for people: each control, invisible or bidirectional character (and `\\`) escaped
/// as Rust's `{:?}` escapes it (`\n`, `\u{202e}`, `\u{200b}`), which is how ingest's log
/// lines print names (their `?` fields); everything else, quotes included, as it is. A name
/// with a line break then starts no line of its own, and two names that differ only in what
/// cannot be seen look different.
pub fn escaped(name: &str) -> std::borrow::Cow<'_, str> {
    let hidden = |c: char| !matches!(c, '\'' | '"') && c.escape_debug().len() > 1;
    if !name.chars().any(hidden) {
        return std::borrow::Cow::Borrowed(name);
    }
    let mut shown = String::with_capacity(name.len() + 8);
    for c in name.chars() {
        if hidden(c) {
            shown.extend(c.escape_debug());
        } else {
            shown.push(c);
        }
    }
    std::borrow::Cow::Owned(shown)
}

/// Splits `id` on its last `-` when the suffix has the shape SSM gives it; `None` for an
/// opaque id (which is still a valid id: see [`is_valid`]).
pub fn split(id: &str) -> Option<SessionIdParts<'_>> {
    let (principal, suffix) = id.rsplit_once('-')?;
    let hex = (8..=17).contains(&suffix.len())
        && suffix.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    let new_style =
        suffix.len() == 26 && suffix.bytes().all(|b| b.is_ascii_digit() || b.is_ascii_lowercase());
    (!principal.is_empty() && (hex || new_style)).then_some(SessionIdParts { principal, suffix })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_names_are_printed_escaped() {
        let cases = [
            ("alice-0123456789abcdef0", "alice-0123456789abcdef0"),
            ("evil\ninjected", "evil\\ninjected"),
            ("kate\u{202e}-0123", "kate\\u{202e}-0123"),
            ("i-0\u{200b}abc", "i-0\\u{200b}abc"),
            ("a\u{1b}[2Jb", "a\\u{1b}[2Jb"),
            ("back\\slash \"quoted\" it's", "back\\\\slash \"quoted\" it's"),
            ("Jos\u{e9}", "Jos\u{e9}"),
        ];
        for (name, shown) in cases {
            assert_eq!(escaped(name), shown, "{name:?}");
        }
    }

    #[test]
    fn test_split_on_last_dash() {
        let cases = [
            ("garland.kan.temp-0e34861185201706f", Some(("garland.kan.temp", "0e34861185201706f"))),
            (
                "42ba7ac1-6122-4f3a-aa64-5f18f81eff1d-0959abc60267189e0",
                Some(("42ba7ac1-6122-4f3a-aa64-5f18f81eff1d", "0959abc60267189e0")),
            ),
            ("bob-ilpxvkhghl9vs9ia2xfdyp4dka", Some(("bob", "ilpxvkhghl9vs9ia2xfdyp4dka"))),
            ("opaque", None),
            ("-0e34861185201706f", None),
        ];
        for (id, expected) in cases {
            let got = split(id).map(|p| (p.principal, p.suffix));
            assert_eq!(got, expected, "{id}");
        }
    }

    #[test]
    fn test_is_valid_rejects_paths_and_controls() {
        for bad in [
            "",
            "a/b",
            "..",
            "a b",
            "a\nb",
            &"x".repeat(97),
            "q%2Fr",
            "p%25",
            "x%2F%2e%2e%2Fy",
            "z\0z",
            "a\\b",
            "kate\u{202e}-0123456789abcdef0",
            "kate\u{200b}-0123456789abcdef0",
            "kät-0123456789abcdef0",
        ] {
            assert!(!is_valid(bad), "{bad:?}");
        }
        assert!(is_valid("jane.doe@example.com-08f49b7ab51000c16"));
    }
}
