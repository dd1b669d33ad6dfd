//! Secret masking for the index. The encrypted raw transcript keeps the original; the `command`
//! and `output` columns get `[REDACTED:<kind>]` in place of each secret.

use std::borrow::Cow;
use std::sync::LazyLock;

use regex::{Captures, Regex};

struct Rule {
    kind: &'static str,
    pattern: Regex,
    /// Capture group that holds the secret; the rest of the match stays.
    group: usize,
    /// Whether a candidate really is a secret (for shapes that also match harmless text).
    accept: fn(&str) -> bool,
}

fn always(_: &str) -> bool {
    true
}

/// An AWS secret access key is 40 base64 characters; require upper case, lower case and a digit
/// so that git hashes, hex digests and words are left alone.
fn looks_like_secret_key(candidate: &str) -> bool {
    candidate.bytes().any(|b| b.is_ascii_uppercase())
        && candidate.bytes().any(|b| b.is_ascii_lowercase())
        && candidate.bytes().any(|b| b.is_ascii_digit() || b == b'/' || b == b'+')
}

/// All the rules' patterns at once, to skip text none of them matches in a single scan.
static ANY_RULE: LazyLock<regex::RegexSet> = LazyLock::new(|| {
    regex::RegexSet::new(RULES.iter().map(|rule| rule.pattern.as_str()))
        .unwrap_or_else(|error| unreachable!("the rules compiled one by one: {error}"))
});

/// Word boundaries are ASCII ones (`(?-u:\b)`): a Unicode boundary makes the regex engine
/// leave its DFA for a much slower one on any text that is not ASCII, and next to a non-ASCII
/// letter an ASCII boundary masks more, never less.
static RULES: LazyLock<Vec<Rule>> = LazyLock::new(|| {
    let rule = |kind, pattern: &str, group| Rule {
        kind,
        pattern: Regex::new(pattern).unwrap_or_else(|error| unreachable!("{kind}: {error}")),
        group,
        accept: always,
    };
    vec![
        rule(
            "private-key",
            r"(-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\z))",
            1,
        ),
        rule(
            "aws-access-key-id",
            r"(?-u:\b)((?:AKIA|ASIA|AIDA|AROA|ANPA|ABIA|ACCA)[A-Z0-9]{16})(?-u:\b)",
            1,
        ),
        rule(
            "aws-secret-access-key",
            r#"(?i)(?:aws_secret_access_key|secret_?access_?key|aws_secret)["']?\s*[:=]\s*["']?([A-Za-z0-9/+=]{40})(?-u:\b)"#,
            1,
        ),
        rule("bearer-token", r"(?i)(?-u:\b)(?:bearer|token)\s+([A-Za-z0-9\-._~+/]{16,}=*)", 1),
        rule(
            "password",
            r#"(?i)(?-u:\b)(?:password|passwd|pwd|secret|api_?key|access_?token|auth_?token|client_?secret)["']?\s*[:=]\s*(?:"([^"\s]+)"|'([^'\s]+)'|([^\s"';&|]+))"#,
            0,
        ),
        Rule {
            accept: looks_like_secret_key,
            ..rule(
                "aws-secret-access-key",
                r"(?:^|[^A-Za-z0-9/+=])([A-Za-z0-9/+]{40})(?:$|[^A-Za-z0-9/+=])",
                1,
            )
        },
    ]
});

/// Fewest bytes a match of any rule but `password` takes: an access key id is 20 characters,
/// `token` and a bearer token 22, a secret access key 40, a private key's armour more (a
/// character is at least a byte). A `password` match holds a `:` or `=`.
const MIN_SECRET_BYTES: usize = 20;

/// Masks the secrets in `text`. Returns the masked text and how many secrets were masked.
pub fn redact(text: &str) -> (Cow<'_, str>, u32) {
    // Most commands and outputs are short (a third of outputs are empty): no rule can match
    // them, which is told without the regex engine.
    if text.len() < MIN_SECRET_BYTES && !text.bytes().any(|byte| byte == b':' || byte == b'=') {
        return (Cow::Borrowed(text), 0);
    }
    // One pass over the text tells whether any rule can apply; most text has no secret.
    if !ANY_RULE.is_match(text) {
        return (Cow::Borrowed(text), 0);
    }
    let mut count = 0u32;
    let mut current: Cow<'_, str> = Cow::Borrowed(text);
    for rule in RULES.iter() {
        if !rule.pattern.is_match(&current) {
            continue;
        }
        let replaced = rule
            .pattern
            .replace_all(&current, |captures: &Captures<'_>| {
                count += 1;
                let whole = captures.get(0).map_or("", |m| m.as_str());
                let secret = if rule.group == 0 {
                    // The value is whichever alternative matched.
                    (1..captures.len()).find_map(|i| captures.get(i))
                } else {
                    captures.get(rule.group)
                };
                if secret.is_some_and(|secret| !(rule.accept)(secret.as_str())) {
                    count -= 1;
                    return whole.to_string();
                }
                match (secret, captures.get(0)) {
                    (Some(secret), Some(all)) => {
                        let start = secret.start() - all.start();
                        let end = secret.end() - all.start();
                        format!("{}[REDACTED:{}]{}", &whole[..start], rule.kind, &whole[end..])
                    }
                    _ => format!("[REDACTED:{}]", rule.kind),
                }
            })
            .into_owned();
        current = Cow::Owned(replaced);
    }
    (current, count)
}

/// [`redact`] for an owned text: the text itself comes back when it holds no secret.
pub fn redact_owned(text: String) -> (String, u32) {
    let (masked, count) = redact(&text);
    match masked {
        Cow::Owned(masked) => (masked, count),
        Cow::Borrowed(_) => (text, count),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_redaction() {
        let cases = [
            ("ls -l", "ls -l", 0),
            (
                "export AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE",
                "export AWS_ACCESS_KEY_ID=[REDACTED:aws-access-key-id]",
                1,
            ),
            (
                "export AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                "export AWS_SECRET_ACCESS_KEY=[REDACTED:aws-secret-access-key]",
                1,
            ),
            (
                "mysql -u root --password=hunter2 db",
                "mysql -u root --password=[REDACTED:password] db",
                1,
            ),
            (
                "curl -H 'Authorization: Bearer abcdefghijklmnop1234'",
                "curl -H 'Authorization: Bearer [REDACTED:bearer-token]'",
                1,
            ),
            (
                "-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----",
                "[REDACTED:private-key]",
                1,
            ),
            (
                "echo wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                "echo [REDACTED:aws-secret-access-key]",
                1,
            ),
            (
                "git show 3f786850e387550fdab836ed7e6dc881de23001b",
                "git show 3f786850e387550fdab836ed7e6dc881de23001b",
                0,
            ),
            // Short texts: a password is still found, the rest need more bytes.
            ("pwd=x", "pwd=[REDACTED:password]", 1),
            ("PASSWD: hunter2", "PASSWD: [REDACTED:password]", 1),
            ("AKIAIOSFODNN7EXAMPL", "AKIAIOSFODNN7EXAMPL", 0),
            ("AKIAIOSFODNN7EXAMPLE", "[REDACTED:aws-access-key-id]", 1),
            ("", "", 0),
        ];
        for (input, expected, count) in cases {
            let (masked, found) = redact(input);
            assert_eq!((masked.as_ref(), found), (expected, count), "{input:?}");
        }
    }

    /// What the length shortcut skips no rule matches: short texts of the rules' own pieces
    /// (Unicode's case folding included: `\u{212a}` is a K, `\u{17f}` an s).
    #[test]
    fn test_no_rule_matches_a_short_text_without_colon_or_equals() {
        let alphabet =
            ["a", "Z", "0", "/", "+", "-", " ", "\u{212a}", "\u{17f}", "token ", "bearer "];
        let mut texts = vec![String::new()];
        for _ in 0..3 {
            let longer: Vec<String> = texts
                .iter()
                .flat_map(|text| alphabet.iter().map(move |piece| format!("{text}{piece}")))
                .collect();
            texts.extend(longer);
        }
        texts.extend(
            ["AKIAIOSFODNN7EXAMPL", "token abcdefghijklm", "-----BEGIN KEY-----"].map(String::from),
        );
        for text in texts.iter().filter(|text| text.len() < MIN_SECRET_BYTES) {
            assert!(!RULES.iter().any(|rule| rule.pattern.is_match(text)), "{text:?}");
        }
    }
}
