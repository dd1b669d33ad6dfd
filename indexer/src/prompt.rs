//! Prompt recognition: where a shell line's prompt ends and what it tells (user, cwd).

/// A prompt found at the start of a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prompt {
    /// Byte length of the prompt in the line.
    pub len: usize,
    /// Working directory the prompt shows.
    pub cwd: Option<String>,
    /// OS user the prompt shows (`[user@host dir]$`, `user@host:dir$`).
    pub user: Option<String>,
}

/// Bytes at the start of a line in which a prompt is looked for.
const PROMPT_WINDOW: usize = 512;

/// Returns the prompt at the start of `line`, among the prompts shells print by default:
///
/// - bash on Amazon Linux / RHEL: `[ec2-user@ip-10-0-0-12 ~]$ ` and `[root@ip-… tmp]# `
/// - bash on Debian / Ubuntu: `ubuntu@ip-10-0-0-12:~/dir$ `
/// - sh / bash without a PS1 of their own: `sh-4.2$ `, `sh-5.2# `, `bash-5.2$ `
/// - dash and minimal prompts: `$ `, `# `
/// - PowerShell: `PS C:\Windows\system32> `
///
/// The grammar is fixed and small: a hand-written matcher runs once per line of every
/// transcript, many times faster than a regex with captures (the tests check it against one).
pub fn known_prompt(line: &str) -> Option<Prompt> {
    let window = &line[..floor_char_boundary(line, PROMPT_WINDOW)];
    let bytes = window.as_bytes();
    // Every known prompt ends in `$`, `#` or `>`: most output lines have none.
    memchr::memchr3(b'$', b'#', b'>', bytes)?;
    bracketed_prompt(window)
        .or_else(|| colon_prompt(window))
        .or_else(|| versioned_shell_prompt(bytes))
        .or_else(|| bare_prompt(bytes))
        .or_else(|| powershell_prompt(window))
}

/// Length of the run of user or host name characters (`[A-Za-z0-9_.-]`) at the start.
fn name_len(bytes: &[u8]) -> usize {
    bytes
        .iter()
        .position(|b| !(b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-')))
        .unwrap_or(bytes.len())
}

/// `user@host` at the start: returns the user's length and the length of the whole.
fn user_at_host(bytes: &[u8]) -> Option<(usize, usize)> {
    let user = name_len(bytes);
    if user == 0 || bytes.get(user) != Some(&b'@') {
        return None;
    }
    let host = name_len(&bytes[user + 1..]);
    (host > 0).then_some((user, user + 1 + host))
}

fn some_text(text: &str) -> Option<String> {
    (!text.is_empty()).then(|| text.to_string())
}

/// `[user@host dir]$ ` (the space after `$`/`#` is optional, the dir too).
fn bracketed_prompt(window: &str) -> Option<Prompt> {
    let bytes = window.as_bytes();
    if bytes.first() != Some(&b'[') {
        return None;
    }
    let (user, mut end) = user_at_host(&bytes[1..])?;
    end += 1;
    let mut cwd = None;
    if bytes.get(end) == Some(&b' ') {
        let dir_len = memchr::memchr(b']', &bytes[end + 1..])?;
        cwd = some_text(&window[end + 1..end + 1 + dir_len]);
        end += 1 + dir_len;
    }
    if bytes.get(end) != Some(&b']') || !matches!(bytes.get(end + 1), Some(b'$' | b'#')) {
        return None;
    }
    end += 2;
    if bytes.get(end) == Some(&b' ') {
        end += 1;
    }
    Some(Prompt { len: end, cwd, user: Some(window[1..1 + user].to_string()) })
}

/// `user@host:dir$ ` (the dir does not start with a blank; the space after `$`/`#` is needed).
fn colon_prompt(window: &str) -> Option<Prompt> {
    let bytes = window.as_bytes();
    let (user, end) = user_at_host(bytes)?;
    if bytes.get(end) != Some(&b':') {
        return None;
    }
    let dir_start = end + 1;
    let first = window[dir_start..].chars().next()?;
    if first.is_whitespace() || matches!(first, '$' | '#') {
        return None;
    }
    // The dir holds no `$` or `#`: the first one ends it, and a space must follow.
    let rest = dir_start + first.len_utf8();
    let sign = rest + memchr::memchr2(b'$', b'#', &bytes[rest..])?;
    if bytes.get(sign + 1) != Some(&b' ') {
        return None;
    }
    Some(Prompt {
        len: sign + 2,
        cwd: some_text(&window[dir_start..sign]),
        user: Some(window[..user].to_string()),
    })
}

/// `sh-4.2$`, `bash-5.2# `, `dash-0.5$ `, `ksh-93$ ` (the space is optional).
fn versioned_shell_prompt(bytes: &[u8]) -> Option<Prompt> {
    let name = [&b"sh-"[..], b"bash-", b"dash-", b"ksh-"]
        .into_iter()
        .find(|name| bytes.starts_with(name))?;
    let mut end = name.len();
    // [0-9]+(\.[0-9]+)*
    loop {
        let digits = bytes[end..].iter().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 {
            return None;
        }
        end += digits;
        if bytes.get(end) == Some(&b'.') && bytes.get(end + 1).is_some_and(u8::is_ascii_digit) {
            end += 1;
        } else {
            break;
        }
    }
    if !matches!(bytes.get(end), Some(b'$' | b'#')) {
        return None;
    }
    end += 1;
    if bytes.get(end) == Some(&b' ') {
        end += 1;
    }
    Some(Prompt { len: end, cwd: None, user: None })
}

/// `$ ` or `# `.
fn bare_prompt(bytes: &[u8]) -> Option<Prompt> {
    (matches!(bytes.first(), Some(b'$' | b'#')) && bytes.get(1) == Some(&b' ')).then_some(Prompt {
        len: 2,
        cwd: None,
        user: None,
    })
}

/// `PS C:\dir> `.
fn powershell_prompt(window: &str) -> Option<Prompt> {
    let bytes = window.as_bytes();
    if !(bytes.starts_with(b"PS ")
        && bytes.get(3).is_some_and(u8::is_ascii_alphabetic)
        && bytes.get(4) == Some(&b':')
        && bytes.get(5) == Some(&b'\\'))
    {
        return None;
    }
    let close = 6 + memchr::memchr(b'>', &bytes[6..])?;
    if bytes.get(close + 1) != Some(&b' ') {
        return None;
    }
    Some(Prompt { len: close + 2, cwd: some_text(&window[3..close]), user: None })
}

/// Returns the shell a known prompt is the default prompt of: bash's PS1 on Amazon Linux,
/// RHEL, Debian and Ubuntu and `bash-5.2$` are bash's, `sh-4.2$`, `dash-0.5$` and a bare `$ `
/// or `# ` are a POSIX `sh`'s (dash, or bash started as `sh`).
pub fn shell_of(prompt_text: &str) -> Option<&'static str> {
    // Runs once per command: byte checks of the shapes `known_prompt` accepted, no allocation.
    let bytes = prompt_text.trim_end_matches(' ').as_bytes();
    let sign = matches!(bytes.last(), Some(b'$' | b'#'));
    if !sign {
        return None;
    }
    let before_sign = &bytes[..bytes.len() - 1];
    if bytes.starts_with(b"bash-")
        || (bytes.first() == Some(&b'[') && before_sign.ends_with(b"]"))
        || (memchr::memchr(b'@', bytes).is_some() && memchr::memchr(b':', bytes).is_some())
    {
        return Some("bash");
    }
    if before_sign.is_empty()
        || [&b"sh-"[..], b"dash-", b"ksh-"].iter().any(|name| bytes.starts_with(name))
    {
        return Some("sh");
    }
    None
}

/// Describes a prompt known to end where it ends (the line editor opened there): its user and
/// cwd when it shows them the way a known prompt does, else the user of a `user@host` in it.
pub fn described(prompt_text: &str) -> Prompt {
    if let Some(known) = known_prompt(prompt_text)
        && known.len == prompt_text.len()
    {
        return known;
    }
    let bytes = prompt_text.as_bytes();
    let user = memchr::memchr_iter(b'@', bytes).find_map(|at| {
        let before = bytes[..at]
            .iter()
            .rev()
            .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
            .count();
        let (user_len, _) = user_at_host(&bytes[at - before..])?;
        Some(prompt_text[at - before..at - before + user_len].to_string())
    });
    Prompt { len: prompt_text.len(), cwd: None, user }
}

/// readline's default vi mode strings (`vi-ins-mode-string`, `vi-cmd-mode-string`), which
/// `show-mode-in-prompt` puts before the prompt.
pub(crate) const VI_MODE_STRINGS: [&str; 2] = ["(ins)", "(cmd)"];

/// Returns the prompt at the start of `line` when it is a known prompt after readline's vi mode
/// string (`(ins)[ec2-user@ip-10-0-0-12 ~]$ `); its length includes the mode string.
pub fn vi_mode_prompt(line: &str) -> Option<Prompt> {
    let after = VI_MODE_STRINGS.iter().find_map(|mode| line.strip_prefix(mode))?;
    let found = known_prompt(after)?;
    Some(Prompt { len: found.len + VI_MODE_STRINGS[0].len(), ..found })
}

/// Returns the prompt of a line the line editor is known to have drawn (bracketed paste tells),
/// for a custom PS1: a known prompt, else everything up to the first `$ `, `# `, `% ` or `> `
/// within the first 256 bytes.
pub fn editor_prompt(line: &str) -> Option<Prompt> {
    if let Some(prompt) = known_prompt(line) {
        return Some(prompt);
    }
    let window = &line[..floor_char_boundary(line, 256)];
    let bytes = window.as_bytes();
    let end = bytes
        .windows(2)
        .position(|pair| matches!(pair[0], b'$' | b'#' | b'%' | b'>') && pair[1] == b' ')?;
    Some(described(&window[..end + 2]))
}

/// Returns the largest char boundary of `text` at or below `index`.
pub(crate) fn floor_char_boundary(text: &str, index: usize) -> usize {
    if index >= text.len() {
        return text.len();
    }
    (0..=index).rev().find(|i| text.is_char_boundary(*i)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use std::sync::LazyLock;

    use proptest::prelude::*;
    use regex::Regex;

    use super::*;

    /// The grammar as a regex: the oracle the hand-written matcher must agree with.
    static KNOWN: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(concat!(
            r"^(?:",
            r"\[(?P<user1>[A-Za-z0-9_.\-]+)@[A-Za-z0-9_.\-]+(?: (?P<cwd1>[^\]]*))?\][$#] ?",
            r"|(?P<user2>[A-Za-z0-9_.\-]+)@[A-Za-z0-9_.\-]+:(?P<cwd2>[^\s$#][^$#]*?)[$#] ",
            r"|(?:sh|bash|dash|ksh)-[0-9]+(?:\.[0-9]+)*[$#] ?",
            r"|[$#] ",
            r"|PS (?P<cwd3>[A-Za-z]:\\[^>]*)> ",
            r")",
        ))
        .unwrap()
    });

    fn oracle(line: &str) -> Option<Prompt> {
        let window = &line[..floor_char_boundary(line, PROMPT_WINDOW)];
        let captures = KNOWN.captures(window)?;
        let cwd = ["cwd1", "cwd2", "cwd3"]
            .iter()
            .find_map(|name| captures.name(name))
            .map(|m| m.as_str().to_string())
            .filter(|cwd| !cwd.is_empty());
        let user = ["user1", "user2"]
            .iter()
            .find_map(|name| captures.name(name))
            .map(|m| m.as_str().to_string());
        Some(Prompt { len: captures.get(0)?.end(), cwd, user })
    }

    proptest! {
        #[test]
        fn test_matcher_agrees_with_the_regex(parts in proptest::collection::vec(prop_oneof![
            Just("["), Just("]"), Just("@"), Just(":"), Just("$"), Just("#"), Just(">"), Just(" "),
            Just("sh-"), Just("bash-"), Just("dash-"), Just("ksh-"), Just("4"), Just("."), Just("2"),
            Just("PS "), Just("C"), Just(":\\"), Just("ec2-user"), Just("ip-10-0-0-12"), Just("~"),
            Just("/srv"), Just("\t"), Just("\n"), Just("日"), Just("x_y"), Just("\u{b}"), Just("\u{a0}"),
        ], 0..14)) {
            let line: String = parts.concat();
            prop_assert_eq!(known_prompt(&line), oracle(&line), "{:?}", line);
        }
    }

    #[test]
    fn test_known_prompts() {
        type Case<'a> = (&'a str, Option<(usize, Option<&'a str>)>);
        let cases: &[Case<'_>] = &[
            ("[ec2-user@ip-10-0-0-12 ~]$ ls", Some((27, Some("~")))),
            ("[root@ip-10-0-0-12 tmp]# id", Some((25, Some("tmp")))),
            ("ubuntu@ip-10-0-0-12:~/src$ make", Some((27, Some("~/src")))),
            ("sh-4.2$ date", Some((8, None))),
            ("sh-5.2# ", Some((8, None))),
            ("$ ls", Some((2, None))),
            ("PS C:\\Windows\\system32> dir", Some((24, Some("C:\\Windows\\system32")))),
            ("total 12", None),
            ("drwxr-xr-x 2 root root 4096 dir", None),
        ];
        for (line, expected) in cases {
            let got = known_prompt(line).map(|p| (p.len, p.cwd));
            let expected = expected.map(|(len, cwd)| (len, cwd.map(str::to_string)));
            assert_eq!(got, expected, "{line:?}");
        }
    }

    #[test]
    fn test_editor_prompt_finds_custom_ps1() {
        assert_eq!(editor_prompt("alice in /srv > ls").map(|p| p.len), Some(16));
        assert_eq!(editor_prompt("no prompt here").map(|p| p.len), None);
    }
}
