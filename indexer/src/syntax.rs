//! Just enough POSIX shell syntax to tell whether a command is complete or the shell will ask for
//! more (PS2, `> `): open quotes, a trailing backslash or operator, an open compound command
//! (`for … do` without `done`), or a here-document whose delimiter has not come yet.

/// Returns whether the shell would run `command` as it is, rather than prompt for more lines.
pub fn is_complete(command: &str) -> bool {
    let mut scanner = Scanner::default();
    for line in command.split('\n') {
        scanner.line(line);
    }
    scanner.complete()
}

#[derive(Default)]
struct Scanner {
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
            self.command_position =
                matches!(word.as_str(), "do" | "then" | "else" | "elif" | "{" | "!" | "time");
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

    fn complete(&self) -> bool {
        self.quote.is_none()
            && self.open.is_empty()
            && self.heredocs.is_empty()
            && !self.continued
            && !self.trailing_operator
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
