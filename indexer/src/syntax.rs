//! Just enough POSIX shell syntax to tell whether a command is complete or the shell will ask for
//! more (PS2, `> `): open quotes, a trailing backslash or operator, an open compound command
//! (`for … do` without `done`), or a here-document whose delimiter has not come yet.

/// Returns whether the shell would run `command` as it is, rather than prompt for more lines.
pub fn is_complete(command: &str) -> bool {
    // Runs for every command: most are one line of plain words, which the scanner would read
    // word by word to find nothing open.
    if is_plain(command) {
        return true;
    }
    let mut scanner = Scanner::default();
    for line in command.split('\n') {
        scanner.line(line);
    }
    scanner.complete()
}

/// Whether `command` is one line of words with no quote, backslash, operator, bracket or `<`
/// (a here-document), and no word that opens a compound command or puts the next word in
/// command position (where a keyword opens one): nothing in it can be left open.
fn is_plain(command: &str) -> bool {
    let special = |byte: &u8| {
        matches!(
            byte,
            b'\n'
                | b'\''
                | b'"'
                | b'`'
                | b'\\'
                | b';'
                | b'&'
                | b'|'
                | b'('
                | b')'
                | b'{'
                | b'}'
                | b'<'
        )
    };
    let bytes = command.as_bytes();
    !bytes.iter().any(special)
        && !bytes.split(|byte| matches!(byte, b' ' | b'\t')).any(|word| {
            matches!(
                word,
                b"for"
                    | b"while"
                    | b"until"
                    | b"select"
                    | b"if"
                    | b"case"
                    | b"do"
                    | b"then"
                    | b"else"
                    | b"elif"
                    | b"!"
                    | b"time"
            )
        })
}

#[derive(Default)]
struct Scanner {
    quote: Option<u8>,
    /// Open compound commands: the keyword that closes each.
    open: Vec<&'static str>,
    /// Here-document delimiters still to come, in order.
    heredocs: Vec<String>,
    /// Delimiters found on the current line, pending from the next line on.
    new_heredocs: Vec<String>,
    continued: bool,
    command_position: bool,
    trailing_operator: bool,
}

impl Scanner {
    fn line(&mut self, line: &str) {
        if let Some(delimiter) = self.heredocs.first() {
            if line.trim_start_matches('\t') == delimiter {
                self.heredocs.remove(0);
            }
            return;
        }
        self.continued = false;
        self.trailing_operator = false;
        if self.quote.is_none() {
            self.command_position = true;
        }
        let bytes = line.as_bytes();
        // Where the word being read starts. Shell syntax is ASCII, so a byte of a non-ASCII
        // character is only ever part of a word. A word is only compared with keywords: the
        // line's bytes from its start serve, quoted parts included (a word with a quote or a
        // backslash is no keyword either way).
        let mut word_start: Option<usize> = None;
        let mut index = 0;
        while index < bytes.len() {
            let c = bytes[index];
            match self.quote {
                Some(b'\'') => {
                    if c == b'\'' {
                        self.quote = None;
                    }
                }
                Some(quote) => {
                    if c == b'\\' {
                        index += 1;
                    } else if c == quote {
                        self.quote = None;
                    }
                }
                None => match c {
                    b'\\' => {
                        if index + 1 == bytes.len() {
                            self.continued = true;
                        }
                        word_start.get_or_insert(index);
                        index += 1;
                    }
                    b'\'' | b'"' | b'`' => {
                        self.quote = Some(c);
                        word_start.get_or_insert(index);
                    }
                    b'#' if word_start.is_none() => break,
                    b'{' | b'}' if word_start.is_none() => self.end_word(&bytes[index..=index]),
                    b';' | b'&' | b'|' | b'(' | b')' | b' ' | b'\t' | b'<' => {
                        if let Some(start) = word_start.take() {
                            self.end_word(&bytes[start..index]);
                        }
                        match c {
                            b';' => self.command_position = true,
                            b'&' => {
                                // `&&` wants more; a single `&` runs the command in the background.
                                let double = bytes.get(index + 1) == Some(&b'&')
                                    || (index > 0 && bytes[index - 1] == b'&');
                                self.command_position = true;
                                self.trailing_operator = double;
                            }
                            b'|' => {
                                self.command_position = true;
                                self.trailing_operator = true;
                            }
                            b'(' => {
                                self.open.push(")");
                                self.command_position = true;
                            }
                            b')' => {
                                self.close(")");
                                self.command_position = true;
                            }
                            b'<' if bytes.get(index + 1) == Some(&b'<') => {
                                index += self.heredoc(&line[index..]);
                                continue;
                            }
                            _ => {}
                        }
                        if !matches!(c, b' ' | b'\t' | b'&' | b'|') {
                            self.trailing_operator = false;
                        }
                    }
                    _ => {
                        self.trailing_operator = false;
                        word_start.get_or_insert(index);
                    }
                },
            }
            index += 1;
        }
        if let Some(start) = word_start {
            self.end_word(&bytes[start..index.min(bytes.len())]);
        }
        self.heredocs.append(&mut self.new_heredocs);
    }

    /// Reads `<<[-] word` at the start of `rest`; returns how many bytes it took.
    fn heredoc(&mut self, rest: &str) -> usize {
        let bytes = rest.as_bytes();
        let mut index = 2;
        if bytes.get(index) == Some(&b'<') {
            return 3; // a here-string, `<<<`
        }
        if bytes.get(index) == Some(&b'-') {
            index += 1;
        }
        while bytes.get(index).is_some_and(|c| *c == b' ' || *c == b'\t') {
            index += 1;
        }
        let mut delimiter = String::new();
        let mut end = rest.len();
        for (offset, c) in rest[index..].char_indices() {
            if c.is_whitespace() || matches!(c, ';' | '&' | '|' | '<' | '>' | '(' | ')') {
                end = index + offset;
                break;
            }
            if !matches!(c, '\'' | '"' | '\\') {
                delimiter.push(c);
            }
        }
        if !delimiter.is_empty() {
            self.new_heredocs.push(delimiter);
        }
        self.command_position = false;
        end
    }

    /// Ends a word (never empty) that `line` read.
    fn end_word(&mut self, word: &[u8]) {
        if self.command_position {
            let opens = match word {
                b"for" | b"while" | b"until" | b"select" => Some("done"),
                b"if" => Some("fi"),
                b"case" => Some("esac"),
                b"{" => Some("}"),
                _ => None,
            };
            let closes = match word {
                b"done" => Some("done"),
                b"fi" => Some("fi"),
                b"esac" => Some("esac"),
                b"}" => Some("}"),
                _ => None,
            };
            // After these the next word is again a command name.
            self.command_position =
                matches!(word, b"do" | b"then" | b"else" | b"elif" | b"{" | b"!" | b"time");
            if let Some(keyword) = opens {
                self.open.push(keyword);
            }
            if let Some(keyword) = closes {
                self.close(keyword);
            }
        } else if word == b"in" || word == b"do" {
            // `for x in …` / `case x in`: the word list follows; `do` starts commands.
            self.command_position = word == b"do";
        }
        self.trailing_operator = false;
    }

    fn close(&mut self, keyword: &str) {
        if let Some(position) = self.open.iter().rposition(|open| *open == keyword) {
            self.open.truncate(position);
        }
    }

    fn complete(&self) -> bool {
        self.quote.is_none()
            && self.open.is_empty()
            && self.heredocs.is_empty()
            && !self.continued
            && !self.trailing_operator
    }
}

/// Returns what `command` prints when it is nothing but `echo` or `printf` of one single-quoted
/// literal that needs no interpretation beyond printf's `\n`, `\\` and `%%` (`printf '[u@h
/// ~]$ rm -rf /\n'`); `None` for anything else (another program, more arguments, options,
/// other escapes or conversions, control characters).
///
/// A shell prints such a literal as it is: the lines right after the command that show exactly
/// that text are its output, whatever they look like.
pub fn literal_output(command: &str) -> Option<String> {
    // Runs once per command: most start with neither.
    let (program, argument) = match command.strip_prefix("echo ") {
        Some(argument) => ("echo", argument),
        None => ("printf", command.strip_prefix("printf ")?),
    };
    let literal = argument.trim_matches(' ').strip_prefix('\'')?.strip_suffix('\'')?;
    if literal.contains('\'') || literal.chars().any(char::is_control) {
        return None;
    }
    match program {
        // bash's echo prints backslashes as they are, dash's interprets them.
        "echo" if !literal.starts_with('-') && !literal.contains('\\') => {
            Some(format!("{literal}\n"))
        }
        "printf" if !literal.starts_with('-') => {
            let mut printed = String::with_capacity(literal.len());
            let mut chars = literal.chars();
            while let Some(c) = chars.next() {
                match (c, matches!(c, '\\' | '%').then(|| chars.next()).flatten()) {
                    ('\\', Some('n')) => printed.push('\n'),
                    ('\\', Some('\\')) => printed.push('\\'),
                    ('%', Some('%')) => printed.push('%'),
                    ('\\' | '%', _) => return None,
                    (c, _) => printed.push(c),
                }
            }
            Some(printed)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// The scanner as it was first written, over `char`s: the oracle for the byte scanner.
    mod reference {
        #[derive(Default)]
        pub struct Scanner {
            quote: Option<char>,
            /// Open compound commands: the keyword that closes each.
            open: Vec<&'static str>,
            /// Here-document delimiters still to come, in order.
            heredocs: Vec<String>,
            /// Delimiters found on the current line, pending from the next line on.
            new_heredocs: Vec<String>,
            continued: bool,
            word: String,
            command_position: bool,
            trailing_operator: bool,
        }

        impl Scanner {
            pub fn line(&mut self, line: &str) {
                if let Some(delimiter) = self.heredocs.first() {
                    if line.trim_start_matches('\t') == delimiter {
                        self.heredocs.remove(0);
                    }
                    return;
                }
                self.continued = false;
                self.trailing_operator = false;
                if self.quote.is_none() {
                    self.command_position = true;
                }
                let chars: Vec<char> = line.chars().collect();
                let mut index = 0;
                while index < chars.len() {
                    let c = chars[index];
                    match self.quote {
                        Some('\'') => {
                            if c == '\'' {
                                self.quote = None;
                            }
                        }
                        Some(quote) => {
                            if c == '\\' {
                                index += 1;
                            } else if c == quote {
                                self.quote = None;
                            }
                        }
                        None => match c {
                            '\\' => {
                                if index + 1 == chars.len() {
                                    self.continued = true;
                                }
                                self.word.push(c);
                                index += 1;
                                if let Some(next) = chars.get(index) {
                                    self.word.push(*next);
                                }
                            }
                            '\'' | '"' | '`' => {
                                self.quote = Some(c);
                                self.word.push(c);
                            }
                            '#' if self.word.is_empty() => break,
                            '{' | '}' if self.word.is_empty() => {
                                self.word.push(c);
                                self.end_word();
                            }
                            ';' | '&' | '|' | '(' | ')' | ' ' | '\t' | '<' => {
                                self.end_word();
                                match c {
                                    ';' => self.command_position = true,
                                    '&' => {
                                        // `&&` wants more; a single `&` runs the command in the background.
                                        let double = chars.get(index + 1) == Some(&'&')
                                            || (index > 0 && chars[index - 1] == '&');
                                        self.command_position = true;
                                        self.trailing_operator = double;
                                    }
                                    '|' => {
                                        self.command_position = true;
                                        self.trailing_operator = true;
                                    }
                                    '(' => {
                                        self.open.push(")");
                                        self.command_position = true;
                                    }
                                    ')' => {
                                        self.close(")");
                                        self.command_position = true;
                                    }
                                    '<' if chars.get(index + 1) == Some(&'<') => {
                                        index += self.heredoc(&chars[index..]);
                                        continue;
                                    }
                                    _ => {}
                                }
                                if !matches!(c, ' ' | '\t' | '&' | '|') {
                                    self.trailing_operator = false;
                                }
                            }
                            _ => {
                                self.trailing_operator = false;
                                self.word.push(c);
                            }
                        },
                    }
                    index += 1;
                }
                self.end_word();
                self.heredocs.append(&mut self.new_heredocs);
            }

            /// Reads `<<[-] word` at the start of `rest`; returns how many chars it took.
            fn heredoc(&mut self, rest: &[char]) -> usize {
                let mut index = 2;
                if rest.get(index) == Some(&'<') {
                    return 3; // a here-string, `<<<`
                }
                if rest.get(index) == Some(&'-') {
                    index += 1;
                }
                while rest.get(index).is_some_and(|c| *c == ' ' || *c == '\t') {
                    index += 1;
                }
                let mut delimiter = String::new();
                while let Some(&c) = rest.get(index) {
                    if c.is_whitespace() || matches!(c, ';' | '&' | '|' | '<' | '>' | '(' | ')') {
                        break;
                    }
                    if !matches!(c, '\'' | '"' | '\\') {
                        delimiter.push(c);
                    }
                    index += 1;
                }
                if !delimiter.is_empty() {
                    self.new_heredocs.push(delimiter);
                }
                self.command_position = false;
                index
            }

            fn end_word(&mut self) {
                if self.word.is_empty() {
                    return;
                }
                let word = std::mem::take(&mut self.word);
                if self.command_position {
                    match word.as_str() {
                        "for" | "while" | "until" | "select" => self.open.push("done"),
                        "if" => self.open.push("fi"),
                        "case" => self.open.push("esac"),
                        "{" => self.open.push("}"),
                        "done" | "fi" | "esac" | "}" => self.close(match word.as_str() {
                            "done" => "done",
                            "fi" => "fi",
                            "esac" => "esac",
                            _ => "}",
                        }),
                        _ => {}
                    }
                    // After these the next word is again a command name.
                    self.command_position = matches!(
                        word.as_str(),
                        "do" | "then" | "else" | "elif" | "{" | "!" | "time"
                    );
                } else if word == "in" || word == "do" {
                    // `for x in …` / `case x in`: the word list follows; `do` starts commands.
                    self.command_position = word == "do";
                }
                self.trailing_operator = false;
            }

            fn close(&mut self, keyword: &str) {
                if let Some(position) = self.open.iter().rposition(|open| *open == keyword) {
                    self.open.truncate(position);
                }
            }

            pub fn complete(&self) -> bool {
                self.quote.is_none()
                    && self.open.is_empty()
                    && self.heredocs.is_empty()
                    && !self.continued
                    && !self.trailing_operator
            }
        }

        pub fn is_complete(command: &str) -> bool {
            let mut scanner = Scanner::default();
            for line in command.split('\n') {
                scanner.line(line);
            }
            scanner.complete()
        }
    }

    proptest! {
        #[test]
        fn test_byte_scanner_agrees_with_the_char_scanner(parts in proptest::collection::vec(prop_oneof![
            Just("for"), Just("do"), Just("done"), Just("if"), Just("then"), Just("fi"), Just("case"),
            Just("in"), Just("esac"), Just("{"), Just("}"), Just("("), Just(")"), Just(" "), Just("\t"),
            Just("\n"), Just(";"), Just("&"), Just("|"), Just("<<"), Just("<<-"), Just("<"), Just("EOF"),
            Just("'"), Just("\""), Just("`"), Just("\\"), Just("#"), Just("x"), Just("日"), Just("\u{a0}"),
            Just("time"), Just("!"), Just("while"),
        ], 0..24)) {
            let command: String = parts.concat();
            prop_assert_eq!(is_complete(&command), reference::is_complete(&command), "{:?}", command);
        }

        /// One line of words and keywords, as most commands are: what `is_plain` lets through
        /// the scanner finds complete.
        #[test]
        fn test_a_plain_command_is_complete_to_the_scanner(parts in proptest::collection::vec(prop_oneof![
            Just("for"), Just("do"), Just("done"), Just("if"), Just("then"), Just("fi"), Just("case"),
            Just("in"), Just("esac"), Just("while"), Just("until"), Just("select"), Just("else"),
            Just("elif"), Just("time"), Just("!"), Just(" "), Just("\t"), Just("#"), Just(">"),
            Just("-"), Just("x"), Just("日"), Just("\u{a0}"), Just("$"), Just("="),
        ], 0..24)) {
            let command: String = parts.concat();
            if is_plain(&command) {
                let mut scanner = Scanner::default();
                scanner.line(&command);
                prop_assert!(scanner.complete(), "{:?}", command);
            }
            prop_assert_eq!(is_complete(&command), reference::is_complete(&command), "{:?}", command);
        }
    }

    #[test]
    fn test_completeness() {
        let cases = [
            ("ls -l", true),
            ("for i in 1 2 3; do", false),
            ("for i in 1 2 3; do\necho $i\ndone", true),
            ("for i in 1 2 3; do echo $i; done", true),
            ("if true; then", false),
            ("if true; then echo y; fi", true),
            ("echo 'open", false),
            ("echo 'open\nclosed'", true),
            ("echo a \\", false),
            ("echo a \\\nb", true),
            ("cat <<EOF", false),
            ("cat <<EOF\nhello\nEOF", true),
            ("cat <<-'END' > f\n\tx\n\tEND", true),
            ("ls |", false),
            ("ls &&", false),
            ("sleep 1 &", true),
            ("echo done", true),
            ("echo \"a # b\"", true),
            ("f() {", false),
            ("f() {\necho x\n}", true),
            ("case $x in", false),
            ("case $x in\na) echo a;;\nesac", true),
            ("cat <<< hi", true),
            ("while true", false),
            ("echo $((1+2))", true),
        ];
        for (command, expected) in cases {
            assert_eq!(is_complete(command), expected, "{command:?}");
        }
    }

    #[test]
    fn test_literal_output() {
        let cases = [
            ("printf '[u@h ~]$ rm -rf /\\n'", Some("[u@h ~]$ rm -rf /\n")),
            ("printf 'a\\nb %% \\\\\\n'", Some("a\nb % \\\n")),
            ("printf 'no newline'", Some("no newline")),
            ("echo '> not a continuation'", Some("> not a continuation\n")),
            ("printf '%s\\n' x", None),
            ("printf 'a\\tb\\n'", None),
            ("printf '%d\\n'", None),
            ("echo 'a\\nb'", None),
            ("echo '-n x'", None),
            ("echo \"$HOME\"", None),
            ("echo 'a' 'b'", None),
            ("echo 'a'; rm x", None),
            ("cat '/etc/motd'", None),
            ("echo", None),
        ];
        for (command, printed) in cases {
            assert_eq!(literal_output(command).as_deref(), printed, "{command:?}");
        }
    }
}
