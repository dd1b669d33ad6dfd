//! What is typed into interactive programs a shell command started (sqlite3, psql, mysql,
//! python, irb, node, redis-cli): their lines become `repl` rows with the program's name,
//! never shell commands. Each program is known by its name and its own prompts; the shell's
//! prompt coming back ends it.

/// The REPL a command name starts (`sqlite3`, `python3.11`, `/usr/bin/psql`), by the name a
/// row carries: its base name without a version at its end.
fn program_named(command_name: &str) -> Option<&'static str> {
    let base = command_name.rsplit('/').next().unwrap_or(command_name);
    let base = base.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.');
    match base {
        "sqlite" => Some("sqlite3"),
        "psql" => Some("psql"),
        "mysql" | "mariadb" => Some("mysql"),
        "python" | "ipython" => Some("python"),
        "irb" => Some("irb"),
        "node" | "nodejs" => Some("node"),
        "redis-cli" => Some("redis-cli"),
        _ => None,
    }
}

/// Options of those programs that take the next word as their value.
const VALUE_OPTIONS: [&str; 14] = [
    "-h", "-p", "-U", "-u", "-d", "-a", "-n", "-P", "-S", "--host", "--port", "--user", "-W", "-D",
];

/// Options that make them run something and exit instead of reading lines.
const BATCH_OPTIONS: [&str; 8] = ["-c", "-e", "-f", "--command", "--execute", "--file", "-m", "-x"];

/// Returns the REPL `command` starts and leaves reading lines, if it does: `sqlite3 app.db`,
/// `sudo -u postgres psql`, `python3 -q`; not `python3 script.py` nor `psql -c 'select 1'`.
pub fn started_by(command: &str) -> Option<&'static str> {
    // Most commands start with another program: nothing more is read of them (runs once per
    // command: the first word only, no allocation).
    // (The first letters of `sudo`, `env`, a path and the programs' names; `=` of an
    // assignment.)
    let first = command.split_ascii_whitespace().next()?;
    let could_be = (matches!(
        first.as_bytes().first(),
        Some(b's' | b'p' | b'm' | b'i' | b'n' | b'r' | b'e' | b'/')
    ) && (program_named(first).is_some() || matches!(first, "sudo" | "env")))
        || first.as_bytes().contains(&b'=');
    if !could_be {
        return None;
    }
    let mut words = command.split_whitespace().peekable();
    // `sudo [-u USER] …`, `env`, `VAR=value` before the program.
    while let Some(&word) = words.peek() {
        if word == "sudo" || word == "env" || (word.contains('=') && !word.starts_with('-')) {
            words.next();
            if word == "sudo" {
                while words.peek().is_some_and(|option| option.starts_with('-')) {
                    if words.next().is_some_and(|option| option == "-u") {
                        words.next();
                    }
                }
            }
        } else {
            break;
        }
    }
    let name = program_named(words.next()?)?;
    // A pipeline, a list or a redirection: the program does not read the terminal's lines.
    // (Checked once the program is known: most commands never get here.)
    if command.bytes().any(|byte| matches!(byte, b'\n' | b'|' | b';' | b'&' | b'<' | b'>')) {
        return None;
    }
    let mut arguments = 0;
    let mut interactive_flag = false;
    while let Some(word) = words.next() {
        if BATCH_OPTIONS.contains(&word) {
            return None;
        }
        if VALUE_OPTIONS.contains(&word) {
            words.next();
        } else if word == "-i" {
            interactive_flag = true;
        } else if !word.starts_with('-') {
            arguments += 1;
        }
    }
    // A database (sqlite3's file, psql's and mysql's name) is read interactively; a script
    // for python, node or irb runs and exits (unless `-i`).
    let takes_database = matches!(name, "sqlite3" | "psql" | "mysql");
    let reads_lines = arguments == 0 || interactive_flag || (takes_database && arguments == 1);
    reads_lines.then_some(name)
}

/// Returns what was typed at `program`'s prompt on `line` (the text after its prompt or its
/// continuation prompt), when the line starts with one.
pub fn input<'a>(program: &str, line: &'a str) -> Option<&'a str> {
    let after = |prompt: &str| line.strip_prefix(prompt);
    match program {
        "sqlite3" => after("sqlite> ").or_else(|| after_continuation(line, "...> ")),
        "python" => after(">>> ").or_else(|| after("... ")).or(matches_bare(line, &[">>>", "..."])),
        "node" => after("> ").or_else(|| after("... ")),
        "mysql" => after("mysql> ")
            .or_else(|| bracketed_name(line, "MariaDB ["))
            .or_else(|| after_continuation(line, "-> "))
            .or_else(|| after_continuation(line, "'> "))
            .or_else(|| after_continuation(line, "\"> ")),
        "psql" => psql(line),
        "irb" => line.starts_with("irb(").then(|| after_marker(line, &["> ", "* "])).flatten(),
        "redis-cli" => redis(line),
        _ => None,
    }
}

/// A line typed into a REPL, as its last redraw showed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Typed<'a> {
    /// The REPL's prompt before it.
    pub prompt: &'a str,
    /// What was typed.
    pub text: &'a str,
}

/// What a streamed line shows of a REPL that redraws its whole line on every key (redis-cli's
/// linenoise, irb's Reline): the agent deleted the CRs and cursor moves between the redraws,
/// so they follow one another on one line, `127.0.0.1:6379> g127.0.0.1:6379> ge…`. Returns
/// the lines of the last redraw, in order (irb redraws a buffer of several lines whole when
/// it is entered, each line with its own number), and what was printed after it; `None` when
/// the line holds no such redraws.
///
/// linenoise's last redraw leaves its grey hint out: it is what was typed. Reline's is drawn
/// twice when the line is entered, the second time followed by what the program printed
/// (`x = 21`, then `x = 21=> 21`): when the last redraw starts with the one before, the rest
/// is output.
pub fn last_redraw<'a>(program: &str, line: &'a str) -> Option<(Vec<Typed<'a>>, &'a str)> {
    let anchor = match program {
        "irb" => "irb(",
        "redis-cli" => {
            let typed = redis(line)?;
            &line[..line.len() - typed.len()]
        }
        _ => return None,
    };
    // Every redraw: its prompt, what follows up to the next one, and irb's line number.
    let mut redraws: Vec<(Typed<'a>, u32)> = Vec::new();
    let mut starts = memchr::memmem::find_iter(line.as_bytes(), anchor.as_bytes())
        .filter(|&start| input(program, &line[start..]).is_some())
        .peekable();
    while let Some(start) = starts.next() {
        let end = starts.peek().copied().unwrap_or(line.len());
        let Some(typed) = input(program, &line[start..end]) else { continue };
        let prompt = &line[start..end - typed.len()];
        redraws.push((Typed { prompt, text: typed }, irb_line_number(prompt)));
    }
    if redraws.len() < 2 {
        return None;
    }
    // The last redraw begins after the last step back to an earlier line number (irb redraws
    // a multi-line buffer from its first line when it is entered).
    let first = redraws.windows(2).rposition(|pair| pair[1].1 < pair[0].1).map_or(0, |at| at + 1);
    let last_redraws = &redraws[first..];
    let mut lines: Vec<Typed<'a>> = Vec::new();
    let mut output = "";
    for (index, (typed, number)) in last_redraws.iter().enumerate() {
        let next_is_same_line = last_redraws.get(index + 1).is_some_and(|next| next.1 == *number);
        if next_is_same_line {
            continue;
        }
        let mut text = typed.text;
        if program == "irb"
            && index > 0
            && last_redraws[index - 1].1 == *number
            && let Some(rest) = text.strip_prefix(last_redraws[index - 1].0.text.trim_end())
        {
            output = rest;
            text = &text[..text.len() - rest.len()];
        }
        lines.push(Typed { prompt: typed.prompt, text: text.trim_end() });
    }
    Some((lines, output))
}

/// The line number in irb's prompt (`irb(main):012:0> `), or 0.
fn irb_line_number(prompt: &str) -> u32 {
    prompt.rsplit(':').nth(1).and_then(|number| number.parse().ok()).unwrap_or(0)
}

/// `   ...> text`: blanks, then the continuation prompt.
fn after_continuation<'a>(line: &'a str, prompt: &str) -> Option<&'a str> {
    line.trim_start_matches(' ').strip_prefix(prompt).filter(|_| line.starts_with(' '))
}

/// The prompt alone, nothing typed (python's `...` ending a block).
fn matches_bare<'a>(line: &'a str, prompts: &[&str]) -> Option<&'a str> {
    prompts.contains(&line).then_some("")
}

/// `MariaDB [db]> text`.
fn bracketed_name<'a>(line: &'a str, opening: &str) -> Option<&'a str> {
    let rest = line.strip_prefix(opening)?;
    let close = rest.find("]> ")?;
    Some(&rest[close + 3..])
}

/// The text after the first of `markers` within the first 40 bytes.
fn after_marker<'a>(line: &'a str, markers: &[&str]) -> Option<&'a str> {
    let window = &line[..crate::prompt::floor_char_boundary(line, 40)];
    let end = markers.iter().filter_map(|marker| window.find(marker)).min()?;
    Some(&line[end + 2..])
}

/// `db=> `, `db=# `, `db-> `, `db(# `, `db'> `: a database name, a state, `>` or `#`.
fn psql(line: &str) -> Option<&str> {
    let name =
        line.bytes().take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.')).count();
    let bytes = line.as_bytes();
    if name == 0
        || !matches!(bytes.get(name), Some(b'=' | b'-' | b'(' | b'\'' | b'"' | b'*'))
        || !matches!(bytes.get(name + 1), Some(b'>' | b'#'))
        || bytes.get(name + 2) != Some(&b' ')
    {
        return None;
    }
    Some(&line[name + 3..])
}

/// `127.0.0.1:6379> `, `host:6379[2]> `.
fn redis(line: &str) -> Option<&str> {
    let window = &line[..crate::prompt::floor_char_boundary(line, 80)];
    let end = window.find("> ")?;
    let prompt = &window[..end];
    (prompt.contains(':') && !prompt.contains(' ')).then(|| &line[end + 2..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_commands_that_start_a_repl() {
        let cases: &[(&str, Option<&str>)] = &[
            ("sqlite3 data/app.db", Some("sqlite3")),
            ("sqlite3", Some("sqlite3")),
            ("sqlite3 app.db 'select 1'", None),
            ("python3 -q", Some("python")),
            ("python3", Some("python")),
            ("python3.11", Some("python")),
            ("/usr/bin/python3 -i script.py", Some("python")),
            ("python3 script.py", None),
            ("python3 -c 'print(1)'", None),
            ("sudo -u postgres psql", Some("psql")),
            ("psql -h db.internal -U app billing", Some("psql")),
            ("psql -c 'select 1'", None),
            ("mysql -u root -p", Some("mysql")),
            ("mysql -e 'show databases'", None),
            ("irb", Some("irb")),
            ("node", Some("node")),
            ("node server.js", None),
            ("redis-cli -h cache", Some("redis-cli")),
            ("redis-cli get key", None),
            ("ls | python3", None),
            ("echo python3", None),
        ];
        for (command, expected) in cases {
            assert_eq!(started_by(command), *expected, "{command:?}");
        }
    }

    #[test]
    fn test_repl_prompts() {
        let cases: &[(&str, &str, Option<&str>)] = &[
            ("sqlite3", "sqlite> select 1;", Some("select 1;")),
            ("sqlite3", "   ...> from t;", Some("from t;")),
            ("sqlite3", "1|2", None),
            ("python", ">>> x = 1", Some("x = 1")),
            ("python", "...     print(x)", Some("    print(x)")),
            ("python", "...", Some("")),
            ("python", "42", None),
            ("psql", "billing=> select 1;", Some("select 1;")),
            ("psql", "billing=# \\dt", Some("\\dt")),
            ("psql", "billing-> from t;", Some("from t;")),
            ("psql", " id | name", None),
            ("mysql", "mysql> show tables;", Some("show tables;")),
            ("mysql", "    -> from t;", Some("from t;")),
            ("mysql", "MariaDB [app]> select 1;", Some("select 1;")),
            ("irb", "irb(main):001:0> puts 1", Some("puts 1")),
            ("irb", "irb(main):002:1* end", Some("end")),
            ("node", "> 1 + 1", Some("1 + 1")),
            ("redis-cli", "127.0.0.1:6379> get key", Some("get key")),
            ("redis-cli", "\"value\"", None),
        ];
        for (program, line, expected) in cases {
            assert_eq!(input(program, line), *expected, "{program} {line:?}");
        }
    }

    #[test]
    fn test_last_redraw_of_a_streamed_line() {
        // (As the agent streams them: the CRs and cursor moves between redraws deleted.)
        type Redraw = Option<(&'static [&'static str], &'static str)>;
        let cases: &[(&str, &str, Redraw)] = &[
            // linenoise: the hint is in every redraw but the last.
            (
                "redis-cli",
                "127.0.0.1:6379> 127.0.0.1:6379> s127.0.0.1:6379> set key value [NX|XX]\
                 127.0.0.1:6379> set a value [NX|XX]127.0.0.1:6379> set a",
                Some((&["set a"], "")),
            ),
            // Reline: drawn twice on Enter, the second time followed by the output.
            (
                "irb",
                "\u{25bd}irb(main):001:0> irb(main):001:0> x = 2irb(main):001:0> x = 21\
                 irb(main):001:0> x = 21=> 21",
                Some((&["x = 21"], "=> 21")),
            ),
            // A buffer of three lines redrawn whole from its first line; a completion
            // dialog in an earlier redraw.
            (
                "irb",
                "irb(main):003:0> ddup    def    irb(main):003:0> def f(a)irb(main):004:2*   a\
                 irb(main):004:1*   a + 1irb(main):005:1* end     irb(main):003:1* def f(a)\
                 irb(main):004:1*   a + 1irb(main):005:0> endirb(main):005:0> end=> :f",
                Some((&["def f(a)", "  a + 1", "end"], "=> :f")),
            ),
            // One redraw only: read as any line.
            ("redis-cli", "127.0.0.1:6379> get a", None),
            ("irb", "=> 42", None),
            ("psql", "billing=# select 1;billing=# select 1;", None),
        ];
        for (program, line, expected) in cases {
            let found = last_redraw(program, line);
            let texts = found
                .as_ref()
                .map(|(lines, output)| (lines.iter().map(|l| l.text).collect::<Vec<_>>(), *output));
            let expected = expected.map(|(lines, output)| (lines.to_vec(), output));
            assert_eq!(texts, expected, "{program} {line:?}");
        }
    }
}
