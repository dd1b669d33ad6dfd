//! Prompt recognition: where a shell line's prompt ends and what it tells (user, cwd).

use std::sync::LazyLock;

use regex::Regex;

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

/// Prompts of the shells SSM sessions run, anchored at the line start. Each alternative names
/// its cwd group `cwd` when it shows one.
static KNOWN: LazyLock<Regex> = LazyLock::new(|| {
    // ASCII classes and unbounded repetition keep the automaton small; callers pass at most
    // PROMPT_WINDOW bytes, which bounds the work.
    Regex::new(concat!(
        r"^(?:",
        // bash on Amazon Linux / RHEL: [ec2-user@ip-10-0-0-12 ~]$  and  [root@ip-… tmp]#
        r"\[(?P<user1>[A-Za-z0-9_.\-]+)@[A-Za-z0-9_.\-]+(?: (?P<cwd1>[^\]]*))?\][$#] ?",
        // bash on Debian / Ubuntu: ubuntu@ip-10-0-0-12:~/dir$
        r"|(?P<user2>[A-Za-z0-9_.\-]+)@[A-Za-z0-9_.\-]+:(?P<cwd2>[^\s$#][^$#]*?)[$#] ",
        // sh / bash without a PS1 of their own: sh-4.2$  sh-5.2#  bash-5.2$
        r"|(?:sh|bash|dash|ksh)-[0-9]+(?:\.[0-9]+)*[$#] ?",
        // dash and minimal prompts
        r"|[$#] ",
        // PowerShell: PS C:\Windows\system32>
        r"|PS (?P<cwd3>[A-Za-z]:\\[^>]*)> ",
        r")",
    ))
    .unwrap_or_else(|error| unreachable!("prompt regex is valid: {error}"))
});

/// Bytes at the start of a line in which a prompt is looked for.
const PROMPT_WINDOW: usize = 512;

/// Returns the prompt at the start of `line`, among the prompts shells print by default.
pub fn known_prompt(line: &str) -> Option<Prompt> {
    let window = &line[..floor_char_boundary(line, PROMPT_WINDOW)];
    // Every known prompt ends in `$`, `#` or `>`: most output lines have none, and skip the regex.
    memchr::memchr3(b'$', b'#', b'>', window.as_bytes())?;
    let captures = KNOWN.captures(window)?;
    let whole = captures.get(0)?;
    let cwd = ["cwd1", "cwd2", "cwd3"]
        .iter()
        .find_map(|name| captures.name(name))
        .map(|m| m.as_str().to_string())
        .filter(|cwd| !cwd.is_empty());
    let user = ["user1", "user2"]
        .iter()
        .find_map(|name| captures.name(name))
        .map(|m| m.as_str().to_string());
    Some(Prompt { len: whole.end(), cwd, user })
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
    Some(Prompt { len: end + 2, cwd: None, user: None })
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
    use super::*;

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
