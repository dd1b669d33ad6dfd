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

/// The length of the value node's REPL shows at the start of `line`, as `util.inspect` prints
/// it on one line (`42`, `'text'`, `undefined`, `[ 1, 2 ]`, `{ a: 1 }`, `[Function: f]`), or 0.
///
/// In the streamed form node's eager-evaluation preview (the value of what is typed so far,
/// drawn in grey on the row below and erased at the next key) is glued to the keys typed
/// after it, as the agent deleted the moves between them: `21* 2` is the preview `21` and
/// the keys `* 2`.
pub fn node_value_len(line: &str) -> usize {
    // `Object [JSON] {}`, `Map(1) { … }`: a constructor's name, a tag, then the value.
    let name = line.bytes().take_while(|byte| byte.is_ascii_alphanumeric()).count();
    if name > 0 && line.as_bytes()[0].is_ascii_uppercase() {
        let mut rest = &line[name..];
        if let Some(tail) = rest.strip_prefix('(') {
            let digits = tail.bytes().take_while(u8::is_ascii_digit).count();
            rest = tail[digits..].strip_prefix(')').unwrap_or(tail);
        }
        if let Some(tagged) = rest.strip_prefix(" [") {
            rest = tagged.find(']').map_or(rest, |close| &tagged[close + 1..]);
        }
        if let Some(value) = rest.strip_prefix(' ')
            && matches!(value.as_bytes().first(), Some(b'{' | b'['))
        {
            let len = bracketed_len(value);
            return if len == 0 { 0 } else { line.len() - value.len() + len };
        }
    }
    let bytes = line.as_bytes();
    match bytes.first() {
        Some(b'[' | b'{') => bracketed_len(line),
        Some(b'\'') => quoted_len(bytes),
        Some(b'-' | b'0'..=b'9') => {
            let digits = |from: usize| {
                from + bytes[from..].iter().take_while(|byte| byte.is_ascii_digit()).count()
            };
            let mut end = digits(usize::from(bytes[0] == b'-'));
            if bytes.get(end) == Some(&b'.') && bytes.get(end + 1).is_some_and(u8::is_ascii_digit) {
                end = digits(end + 1);
            }
            if bytes.get(end) == Some(&b'n') {
                end += 1;
            }
            if end == usize::from(bytes[0] == b'-') { 0 } else { end }
        }
        _ => ["undefined", "null", "true", "false", "NaN", "Infinity"]
            .iter()
            .find(|word| line.starts_with(*word))
            .map_or(0, |word| word.len()),
    }
}

/// The length of a bracketed value, or of one node cut at the terminal's width with `...`.
fn bracketed_len(line: &str) -> usize {
    match balanced_len(line.as_bytes()) {
        0 => line.find("...").map_or(0, |cut| cut + 3),
        len => len,
    }
}

/// The length of a bracketed value (brackets balanced outside quotes), or 0.
fn balanced_len(bytes: &[u8]) -> usize {
    let mut depth = 0usize;
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'[' | b'{' | b'(' => depth += 1,
            b']' | b'}' | b')' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return index + 1;
                }
            }
            b'\'' => match quoted_len(&bytes[index..]) {
                0 => return 0,
                len => index += len - 1,
            },
            _ => {}
        }
        index += 1;
    }
    0
}

/// The length of a single-quoted string with backslash escapes, or 0.
fn quoted_len(bytes: &[u8]) -> usize {
    let mut index = 1;
    while index < bytes.len() {
        match bytes[index] {
            b'\\' => index += 1,
            b'\'' => return index + 1,
            _ => {}
        }
        index += 1;
    }
    0
}

/// The longest completion preview [`without_completion_previews`] looks for.
const MAX_COMPLETION_PREVIEW: usize = 32;

/// Returns `text` without the completion previews node drew after the cursor, as the
/// streamed form shows them. node draws the rest of a completion (`urn` after `ret`) in grey
/// after the cursor and draws it again, shorter, at each key that matches it, so keys typed
/// over a preview `W` stream as `W` then `W[0..]`, `W[1..]` … `W[m-1..]` (`ret` + `urn` `urn`
/// `rn` `n` = `returnurnrnn` for `return`). Such a run of a preview of two characters or more
/// is read as the preview's text; keys typed over its first `k` characters only, then others,
/// (`k` ≥ 2) stream as `W`, `W[0..]` … `W[k-1..]`, read as `W[..k]`.
pub fn without_completion_previews(text: &str) -> std::borrow::Cow<'_, str> {
    let bytes = text.as_bytes();
    let mut out: Option<String> = None;
    let mut copied = 0;
    let mut index = 0;
    while index < bytes.len() {
        // (Completions are words: ASCII, at most `MAX_COMPLETION_PREVIEW` bytes.)
        let widest = MAX_COMPLETION_PREVIEW.min((bytes.len() - index) / 2);
        // The widest preview `W` here followed by at least `W[0..]`, and how many keys of it
        // were typed (each key the next character of `W`, then the rest of `W` again).
        let found = (2..=widest).rev().find_map(|width| {
            let word = &bytes[index..index + width];
            if !word.is_ascii() {
                return None;
            }
            let mut at = index + width;
            let mut typed = 0;
            while typed < width && bytes.get(at..at + width - typed) == Some(&word[typed..]) {
                at += width - typed;
                typed += 1;
            }
            // (`W` then `W` again alone is text typed twice: `8080`.)
            (typed >= 2).then_some((width, typed, at))
        });
        match found {
            Some((_, typed, run_end)) => {
                let kept = out.get_or_insert_with(String::new);
                kept.push_str(&text[copied..index + typed]);
                index = run_end;
                copied = index;
            }
            None => index += 1,
        }
    }
    match out {
        Some(mut kept) => {
            kept.push_str(text.get(copied..).unwrap_or_default());
            std::borrow::Cow::Owned(kept)
        }
        None => std::borrow::Cow::Borrowed(text),
    }
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
    fn test_node_values() {
        let cases: &[(&str, usize)] = &[
            ("42", 2),
            ("21* 2", 2),
            ("-1.5n", 5),
            ("undefinedp", 9),
            ("'it\\'s'.length", 7),
            ("[ 1, 2, 3 ].m", 11),
            ("[Function: f](41)", 13),
            ("{ a: [ 1 ], b: '}' }x", 20),
            ("Object [JSON] {}SON", 16),
            ("Map(1) { 'a' => 1 }.size", 19),
            ("{ arch: [Function: arch], [Symbol(S....h", 38),
            ("n is 15", 0),
            ("Uncaught ReferenceError: y is not defined", 0),
            ("-", 0),
            ("{", 0),
        ];
        for (line, expected) in cases {
            assert_eq!(node_value_len(line), *expected, "{line:?}");
        }
    }

    #[test]
    fn test_completion_previews_are_read_as_typed() {
        let cases = [
            (".exititt", ".exit"),
            ("returnurnrnn a + 1", "return a + 1"),
            ("const os = requireree('o", "const os = require('o"),
            ("{ debuggeruggergger: 1 }", "{ debug: 1 }"),
            ("JSONSONONN.stringifytringifyringifyingifyngifygifyifyfyy(", "JSON.stringify("),
            // Two keys of a preview, then others.
            (".stringifytringifyringifyx", ".strx"),
            // Text typed twice is text.
            ("port: 8080", "port: 8080"),
            ("address", "address"),
            ("abab", "abab"),
            ("é日本", "é日本"),
        ];
        for (streamed, typed) in cases {
            assert_eq!(without_completion_previews(streamed), typed, "{streamed:?}");
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
