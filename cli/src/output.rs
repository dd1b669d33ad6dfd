//! Query results on stdout, streamed batch by batch: an aligned table, CSV with a header, or
//! JSON Lines ending in a summary record.
//!
//! Every format reads a value through one cell formatter ([`cell_text`]), so a time or a
//! number reads the same in the table, the CSV and the JSON. Nothing is collected: CSV and JSON
//! rows go out as their batch arrives, and the table is aligned in chunks of
//! [`TABLE_CHUNK_ROWS`] rows, so a result of millions of rows needs the memory of one chunk.
//!
//! # JSON Lines format
//!
//! One object per line, `{"type":…,"data":{…}}` (ripgrep's shape): `match` (search, sessions,
//! show) or `row` (sql) records whose `data` maps column names to values (numbers, booleans,
//! strings, `null`; times as `2026-03-14 09:26:50Z`; binary values as `{"text":…}` or
//! `{"bytes":"<base64>"}`), then one `summary` record.

use std::borrow::Cow;
use std::io::{IsTerminal as _, Write as _};

use anyhow::Context as _;
use base64::Engine as _;
use clap::{Args as ClapArgs, ValueEnum};
use datafusion::arrow::array::{Array, AsArray as _, RecordBatch};
use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use sessionlake_read::error::ReadError;
use unicode_width::UnicodeWidthStr as _;

use crate::time;

/// Rows aligned together in table output; each chunk is aligned on its own.
pub const TABLE_CHUNK_ROWS: usize = 4096;

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Aligned columns for people.
    Table,
    /// CSV with a header row.
    Csv,
    /// JSON Lines ending with a summary record.
    Json,
    /// One self-contained HTML page (no script, no network): a timeline per principal and
    /// target, each session linked to its export bundle. The page is written when the result
    /// is complete, so its rows are held in memory: use --limit for a big result.
    Html,
}

/// When to colour the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorWhen {
    /// When stdout is a terminal, `NO_COLOR` is unset and `TERM` is not `dumb` (or when
    /// `CLICOLOR_FORCE` is set).
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

/// Output options shared by the commands that print rows.
#[derive(Debug, Clone, ClapArgs)]
pub struct OutputArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table, env = "SESSIONLAKE_FORMAT")]
    pub format: OutputFormat,
    /// JSON Lines output, ending with a summary record (same as --format json).
    #[arg(long, conflicts_with = "format", env = "SESSIONLAKE_JSON")]
    pub json: bool,
    /// Colour matches: auto (a terminal, without NO_COLOR or TERM=dumb), always or never.
    #[arg(long, value_enum, default_value_t = ColorWhen::Auto, env = "SESSIONLAKE_COLOR")]
    pub color: ColorWhen,
    /// Table output: print long cells whole. Without it, a table on a terminal (or with
    /// `COLUMNS` set) fits its width, long cells cut with `…`; CSV and JSON are always whole.
    #[arg(long, env = "SESSIONLAKE_WIDE")]
    pub wide: bool,
}

impl OutputArgs {
    /// Returns the width a table fits in: none with `--wide`; else `COLUMNS` when set, the
    /// terminal's width when stdout is one, none when it is not (a file or a pipe).
    pub fn table_width(&self) -> Option<usize> {
        if self.wide {
            return None;
        }
        let columns = std::env::var("COLUMNS").ok().and_then(|value| value.trim().parse().ok());
        columns.filter(|width: &usize| *width > 0).or_else(terminal_width)
    }

    /// Returns the format asked for (`--json` wins).
    pub fn format(&self) -> OutputFormat {
        if self.json { OutputFormat::Json } else { self.format }
    }

    /// Returns whether table output is coloured: never for CSV or JSON.
    pub fn colored(&self) -> bool {
        if self.format() != OutputFormat::Table {
            return false;
        }
        match self.color {
            ColorWhen::Always => true,
            ColorWhen::Never => false,
            ColorWhen::Auto => {
                auto_color(std::io::stdout().is_terminal(), |name| std::env::var_os(name))
            }
        }
    }
}

/// Returns the width of the terminal on stdout, if it is one.
fn terminal_width() -> Option<usize> {
    let (_, columns) = console::Term::stdout().size_checked()?;
    (columns > 0).then_some(usize::from(columns))
}

/// The `--color auto` rule: `NO_COLOR` (set and not empty) turns colour off, `CLICOLOR_FORCE`
/// (set and not `0`) turns it on, otherwise colour needs a terminal whose `TERM` is not `dumb`.
/// Written out rather than taken from `anstream`, whose rule also colours on a dumb terminal
/// whenever `CI` is set.
fn auto_color(is_terminal: bool, env: impl Fn(&str) -> Option<std::ffi::OsString>) -> bool {
    if env("NO_COLOR").is_some_and(|value| !value.is_empty()) {
        return false;
    }
    if env("CLICOLOR_FORCE").is_some_and(|value| !value.is_empty() && value != "0") {
        return true;
    }
    is_terminal && env("TERM").is_none_or(|term| term != "dumb")
}

/// How table output looks: its header and how a row of cell texts becomes the table's cells.
pub struct TableLayout {
    /// Column titles.
    pub header: Vec<String>,
    /// Turns a result row (cell texts, `None` for null) into the table's cells.
    pub row: fn(&[Option<String>]) -> Vec<String>,
    /// Table column whose matches of `highlights` are coloured.
    pub highlight_column: Option<usize>,
}

impl TableLayout {
    /// A table of the result's own columns, nulls shown as `NULL`.
    pub fn plain(header: Vec<String>) -> TableLayout {
        TableLayout {
            header,
            row: |row| {
                row.iter().map(|cell| cell.clone().unwrap_or_else(|| "NULL".to_string())).collect()
            },
            highlight_column: None,
        }
    }
}

/// Writes result batches to stdout in one format.
pub struct Printer {
    out: std::io::BufWriter<std::io::StdoutLock<'static>>,
    format: OutputFormat,
    /// Leading columns of each batch that are shown (the rest are sort keys).
    visible: usize,
    record_type: &'static str,
    layout: TableLayout,
    color: bool,
    /// Width a table fits in (`None`: cells whole).
    width: Option<usize>,
    highlights: Vec<regex::Regex>,
    pending: Vec<Vec<String>>,
    csv: csv::Writer<Vec<u8>>,
    header_written: bool,
    rows: u64,
    /// `--format html`: the column names and rows of the page.
    html: crate::html::ReportPage,
}

impl Printer {
    /// Returns a printer of the first `visible` columns of each batch; JSON records are of type
    /// `record_type`.
    pub fn new(
        output: &OutputArgs,
        visible: usize,
        record_type: &'static str,
        layout: TableLayout,
    ) -> Printer {
        Printer {
            out: std::io::BufWriter::new(std::io::stdout().lock()),
            format: output.format(),
            visible,
            record_type,
            layout,
            color: output.colored(),
            width: output.table_width(),
            highlights: Vec::new(),
            pending: Vec::new(),
            csv: csv::Writer::from_writer(Vec::new()),
            header_written: false,
            rows: 0,
            html: crate::html::ReportPage::default(),
        }
    }

    /// Colours the matches of `patterns` in the layout's highlight column (table output only).
    pub fn with_highlights(mut self, patterns: Vec<regex::Regex>) -> Printer {
        self.highlights = patterns;
        self
    }

    /// Returns the output format.
    pub fn format(&self) -> OutputFormat {
        self.format
    }

    /// Returns how many rows were written.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Starts the output of a result of `schema`: the CSV header, even for an empty result.
    pub fn start(&mut self, schema: &datafusion::arrow::datatypes::Schema) -> anyhow::Result<()> {
        if self.format == OutputFormat::Csv && !self.header_written {
            self.csv.write_record(schema.fields().iter().take(self.visible).map(|f| f.name()))?;
            self.header_written = true;
        }
        if self.format == OutputFormat::Html && self.html.columns.is_empty() {
            self.html.columns =
                schema.fields().iter().take(self.visible).map(|f| f.name().clone()).collect();
        }
        Ok(())
    }

    /// Writes the rows of `batch`.
    pub fn write_batch(&mut self, batch: &RecordBatch) -> anyhow::Result<()> {
        let visible = self.visible.min(batch.num_columns());
        let names: Vec<String> =
            batch.schema().fields().iter().take(visible).map(|f| f.name().clone()).collect();
        match self.format {
            OutputFormat::Json => {
                for row in 0..batch.num_rows() {
                    let data: serde_json::Map<String, serde_json::Value> = names
                        .iter()
                        .enumerate()
                        .map(|(column, name)| {
                            Ok((name.clone(), cell_json(batch.column(column).as_ref(), row)?))
                        })
                        .collect::<anyhow::Result<_>>()?;
                    let record = json_record(self.record_type, &serde_json::Value::Object(data));
                    writeln!(self.out, "{record}")?;
                }
            }
            OutputFormat::Csv => {
                for row in 0..batch.num_rows() {
                    for column in 0..visible {
                        let cell = cell_str(batch.column(column).as_ref(), row)?;
                        self.csv.write_field(cell.as_deref().unwrap_or(""))?;
                    }
                    self.csv.write_record(None::<&[u8]>)?;
                }
                self.drain_csv()?;
                self.out.flush()?;
            }
            OutputFormat::Html => {
                if self.html.columns.is_empty() {
                    self.html.columns = names;
                }
                for row in 0..batch.num_rows() {
                    let cells = (0..visible)
                        .map(|column| cell_text(batch.column(column).as_ref(), row))
                        .collect::<anyhow::Result<Vec<_>>>()?;
                    self.html.rows.push(cells);
                }
            }
            OutputFormat::Table => {
                for row in 0..batch.num_rows() {
                    let cells = (0..visible)
                        .map(|column| cell_text(batch.column(column).as_ref(), row))
                        .collect::<anyhow::Result<Vec<_>>>()?;
                    self.pending.push((self.layout.row)(&cells));
                    if self.pending.len() == TABLE_CHUNK_ROWS {
                        self.flush_table()?;
                    }
                }
            }
        }
        self.rows += batch.num_rows() as u64;
        Ok(())
    }

    /// Moves the CSV written so far to stdout.
    fn drain_csv(&mut self) -> anyhow::Result<()> {
        let writer = std::mem::replace(&mut self.csv, csv::Writer::from_writer(Vec::new()));
        let bytes = writer.into_inner().map_err(|error| anyhow::anyhow!("{}", error.error()))?;
        self.out.write_all(&bytes)?;
        Ok(())
    }

    fn flush_table(&mut self) -> std::io::Result<()> {
        let highlight = match self.layout.highlight_column {
            Some(column) if self.color && !self.highlights.is_empty() => {
                Some((column, self.highlights.as_slice()))
            }
            _ => None,
        };
        if self.pending.is_empty() {
            return Ok(());
        }
        let header = (!self.header_written).then_some(self.layout.header.as_slice());
        let style = TableStyle { highlight, color: self.color, width: self.width };
        render_table(&mut self.out, header, &self.pending, style)?;
        self.header_written = true;
        self.pending.clear();
        self.out.flush()
    }

    /// Writes what is pending, then the summary: a JSON `summary` record, or `text` on stderr
    /// (with `"partial": true`, or a note, when committed files were left out).
    pub fn finish(mut self, mut summary: serde_json::Value, text: &str) -> anyhow::Result<()> {
        if is_partial()
            && let Some(fields) = summary.as_object_mut()
        {
            fields.insert("partial".into(), serde_json::Value::Bool(true));
        }
        match self.format {
            OutputFormat::Table => self.flush_table()?,
            OutputFormat::Csv => self.drain_csv()?,
            OutputFormat::Json => {}
            OutputFormat::Html => {
                let mut page = std::mem::take(&mut self.html);
                page.query = command_line(std::env::args());
                page.summary = text.to_string();
                page.made_at =
                    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
                self.out.write_all(crate::html::report_page(&page).as_bytes())?;
            }
        }
        if self.format == OutputFormat::Json {
            writeln!(self.out, "{}", json_record("summary", &summary))?;
        }
        self.out.flush()?;
        if self.format != OutputFormat::Json {
            eprintln!("{text}");
        }
        Ok(())
    }
}

/// Returns the command line as a shell would take it back (words quoted where needed).
fn command_line(args: impl Iterator<Item = String>) -> String {
    let words: Vec<String> = args
        .enumerate()
        .map(|(index, arg)| {
            // The program as people type it, not the path it was run from.
            let arg = if index == 0 { "sessionlake".to_string() } else { arg };
            shlex::try_quote(&arg).map_or_else(|_| arg.replace('\0', ""), |q| q.to_string())
        })
        .collect();
    words.join(" ")
}

/// Whether this process's answer leaves out committed files (`--allow-partial`).
static PARTIAL: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Marks the answer partial: committed files were left out.
pub fn mark_partial() {
    PARTIAL.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// Returns whether the answer is partial (see [`mark_partial`]).
pub fn is_partial() -> bool {
    PARTIAL.load(std::sync::atomic::Ordering::Relaxed)
}

/// Returns a printer's `error` as the read library's row sink error: the error it is (an
/// `io::Error` or `csv::Error` of its own, which [`is_broken_pipe`] looks for), else its chain.
pub fn sink_error(error: anyhow::Error) -> ReadError {
    let error = match error.downcast::<std::io::Error>() {
        Ok(io) => return ReadError::sink(io),
        Err(error) => error,
    };
    match error.downcast::<csv::Error>() {
        Ok(csv) => ReadError::sink(csv),
        Err(error) => ReadError::sink(error),
    }
}

/// Returns whether `error` is a write to a closed pipe (`sessionlake search | head`).
pub fn is_broken_pipe(error: &anyhow::Error) -> bool {
    let is_pipe = |cause: &(dyn std::error::Error + 'static)| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            || cause
                .downcast_ref::<csv::Error>()
                .is_some_and(|csv| matches!(csv.kind(), csv::ErrorKind::Io(io) if io.kind() == std::io::ErrorKind::BrokenPipe))
    };
    error.chain().any(|cause| {
        // The printer's own error, which the read library passes on under its `ReadError`
        // (whose chain of causes starts below it).
        let passed = cause.downcast_ref::<ReadError>().and_then(ReadError::cause);
        is_pipe(cause) || passed.is_some_and(|passed| is_pipe(passed))
    })
}

/// Returns the one line a person reads for `error`: its causes joined by `: ` (as `{:#}`
/// does), without the wrapping the query engine adds (`External error: `), and with a run of
/// clauses said again right after itself said once (the engine repeats a cause once for each
/// layer that passes it on: "failed to open X: … : failed to open X: …").
pub fn error_message(error: &anyhow::Error) -> String {
    let full = format!("{error:#}").replace("External error: ", "");
    // One line: an indented list under a cause (the AWS credential chain names each provider
    // it tried) is left out.
    let full = full
        .lines()
        .filter(|line| !line.starts_with(char::is_whitespace))
        .map(|line| line.trim_end_matches(" Attempted:"))
        .collect::<Vec<_>>()
        .join(" ");
    let mut clauses: Vec<&str> = full.split(": ").collect();
    let mut at = 0;
    while at < clauses.len() {
        let repeated = (1..=(clauses.len() - at) / 2)
            .find(|&run| clauses[at..at + run] == clauses[at + run..at + 2 * run]);
        match repeated {
            Some(run) => drop(clauses.drain(at + run..at + 2 * run)),
            None => at += 1,
        }
    }
    let joined = clauses.join(": ");
    let hint = sessionlake_storage::aws::settings_hint(&joined);
    format!("{joined}{hint}")
}

/// One JSON Lines record, `{"type":…,"data":…}` with `type` first (ripgrep's shape).
pub fn json_record(kind: &str, data: &serde_json::Value) -> String {
    format!("{{\"type\":{},\"data\":{data}}}", serde_json::Value::from(kind))
}

/// Returns whether `zone` names UTC.
fn is_utc(zone: &str) -> bool {
    matches!(zone, "UTC" | "+00:00" | "Z" | "Etc/UTC")
}

/// Returns the text of one value, `None` for null. The lake's times (µs, UTC) read as
/// `2026-03-14 09:26:50Z`; everything else as arrow's display formats it.
pub fn cell_text(array: &dyn Array, row: usize) -> anyhow::Result<Option<String>> {
    Ok(cell_str(array, row)?.map(Cow::into_owned))
}

/// [`cell_text`], borrowing the text of string columns (a search prints millions of cells).
pub fn cell_str(array: &dyn Array, row: usize) -> anyhow::Result<Option<Cow<'_, str>>> {
    use datafusion::arrow::datatypes as types;
    if array.is_null(row) {
        return Ok(None);
    }
    let integer = |value: &dyn std::fmt::Display| Cow::Owned(value.to_string());
    let text = match array.data_type() {
        DataType::Utf8 => Cow::Borrowed(array.as_string::<i32>().value(row)),
        DataType::Utf8View => Cow::Borrowed(array.as_string_view().value(row)),
        DataType::LargeUtf8 => Cow::Borrowed(array.as_string::<i64>().value(row)),
        DataType::Timestamp(TimeUnit::Microsecond, Some(zone)) if is_utc(zone) => {
            let micros = array.as_primitive::<types::TimestampMicrosecondType>().value(row);
            Cow::Owned(time::format_display_time(micros))
        }
        DataType::UInt32 => integer(&array.as_primitive::<types::UInt32Type>().value(row)),
        DataType::UInt64 => integer(&array.as_primitive::<types::UInt64Type>().value(row)),
        DataType::Int32 => integer(&array.as_primitive::<types::Int32Type>().value(row)),
        DataType::Int64 => integer(&array.as_primitive::<types::Int64Type>().value(row)),
        _ => Cow::Owned(
            ArrayFormatter::try_new(array, &FormatOptions::default())
                .context("failed to format a value")?
                .value(row)
                .to_string(),
        ),
    };
    Ok(Some(text))
}

/// Returns one value as JSON: numbers and booleans as such, binary as `{"text"}`/`{"bytes"}`.
pub fn cell_json(array: &dyn Array, row: usize) -> anyhow::Result<serde_json::Value> {
    if array.is_null(row) {
        return Ok(serde_json::Value::Null);
    }
    let data_type = array.data_type();
    if *data_type == DataType::Boolean {
        return Ok(serde_json::Value::from(array.as_boolean().value(row)));
    }
    let bytes = match data_type {
        DataType::Binary => Some(array.as_binary::<i32>().value(row)),
        DataType::LargeBinary => Some(array.as_binary::<i64>().value(row)),
        DataType::BinaryView => Some(array.as_binary_view().value(row)),
        DataType::FixedSizeBinary(_) => Some(array.as_fixed_size_binary().value(row)),
        _ => None,
    };
    if let Some(bytes) = bytes {
        return Ok(match std::str::from_utf8(bytes) {
            Ok(text) => serde_json::json!({ "text": text }),
            Err(_) => serde_json::json!({
                "bytes": base64::engine::general_purpose::STANDARD.encode(bytes)
            }),
        });
    }
    // Times in JSON are UTC whatever `--tz`: a machine reads them.
    if let DataType::Timestamp(TimeUnit::Microsecond, Some(zone)) = data_type
        && is_utc(zone)
    {
        let micros = array
            .as_primitive::<datafusion::arrow::datatypes::TimestampMicrosecondType>()
            .value(row);
        return Ok(serde_json::Value::String(time::format_time(micros)));
    }
    let text = cell_text(array, row)?.unwrap_or_default();
    if data_type.is_integer() || data_type.is_floating() {
        // NaN and infinities have no JSON number: they stay text.
        if let Ok(number) = text.parse::<serde_json::Number>() {
            return Ok(serde_json::Value::Number(number));
        }
    }
    Ok(serde_json::Value::String(text))
}

/// Replaces control characters (escape sequences in a transcript could drive the reader's
/// terminal) with their visible symbols; keeps line breaks.
fn visible(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\n' => c,
            '\u{0}'..='\u{1f}' => char::from_u32(0x2400 + c as u32).unwrap_or('?'),
            '\u{7f}' => '\u{2421}',
            _ => c,
        })
        .collect()
}

/// Byte ranges of `text` matched by any of `patterns`, sorted and merged.
fn match_ranges(text: &str, patterns: &[regex::Regex]) -> Vec<(usize, usize)> {
    let mut ranges: Vec<(usize, usize)> = patterns
        .iter()
        .flat_map(|pattern| pattern.find_iter(text).map(|m| (m.start(), m.end())))
        .filter(|(start, end)| start < end)
        .collect();
    ranges.sort_unstable();
    let mut merged: Vec<(usize, usize)> = Vec::with_capacity(ranges.len());
    for (start, end) in ranges {
        match merged.last_mut() {
            Some(last) if start <= last.1 => last.1 = last.1.max(end),
            _ => merged.push((start, end)),
        }
    }
    merged
}

/// Writes `text` with the matches of `patterns` in bold red.
fn write_highlighted(
    out: &mut impl std::io::Write,
    text: &str,
    patterns: &[regex::Regex],
) -> std::io::Result<()> {
    let style = anstyle::Style::new().bold().fg_color(Some(anstyle::AnsiColor::Red.into()));
    let mut at = 0;
    for (start, end) in match_ranges(text, patterns) {
        write!(
            out,
            "{}{}{}{}",
            &text[at..start],
            style.render(),
            &text[start..end],
            style.render_reset()
        )?;
        at = end;
    }
    out.write_all(&text.as_bytes()[at..])
}

/// Writes rows as aligned columns: one space either side of each cell, no trailing spaces,
/// cells of several lines over several lines. `header` is bold when `color`.
/// How a table is drawn: the column whose matches are coloured, colour, the width it fits in.
#[derive(Clone, Copy)]
struct TableStyle<'a> {
    highlight: Option<(usize, &'a [regex::Regex])>,
    color: bool,
    width: Option<usize>,
}

/// Narrowest a column is cut to (a cell cut shorter says nothing).
const MIN_COLUMN_WIDTH: usize = 6;

/// Returns the column widths that fit `total` (cells apart by two spaces, a leading one): the
/// widest column is narrowed first, one cell at a time, never below [`MIN_COLUMN_WIDTH`] (or
/// its own width); a table that cannot fit at those widths keeps them.
fn fit_widths(mut widths: Vec<usize>, total: usize) -> Vec<usize> {
    let used =
        |widths: &[usize]| widths.iter().sum::<usize>() + 2 * widths.len().saturating_sub(1) + 1;
    while used(&widths) > total {
        let Some((widest, width)) =
            widths.iter().copied().enumerate().max_by_key(|(_, width)| *width)
        else {
            break;
        };
        if width <= MIN_COLUMN_WIDTH {
            break;
        }
        widths[widest] = width - 1;
    }
    widths
}

/// Cuts `text` to `width` display cells, its last cell `…` when anything was cut.
fn cut(text: &str, width: usize) -> String {
    if text.width() <= width {
        return text.to_string();
    }
    let mut kept = String::new();
    let mut used = 0;
    for character in text.chars() {
        let cells = unicode_width::UnicodeWidthChar::width(character).unwrap_or(0);
        if used + cells + 1 > width {
            break;
        }
        kept.push(character);
        used += cells;
    }
    kept.push('…');
    kept
}

fn render_table(
    out: &mut impl std::io::Write,
    header: Option<&[String]>,
    rows: &[Vec<String>],
    style: TableStyle<'_>,
) -> std::io::Result<()> {
    let TableStyle { highlight, color, width } = style;
    if rows.is_empty() {
        return Ok(());
    }
    let rows: Vec<Vec<String>> =
        rows.iter().map(|row| row.iter().map(|cell| visible(cell)).collect()).collect();
    let columns = rows.iter().map(Vec::len).chain(header.map(<[String]>::len)).max().unwrap_or(0);
    let mut widths = vec![0usize; columns];
    for row in rows.iter().chain(header.map(<[String]>::to_vec).as_ref()) {
        for (column, cell) in row.iter().enumerate() {
            let widest = cell.split('\n').map(|line| line.width()).max().unwrap_or(0);
            widths[column] = widths[column].max(widest);
        }
    }
    // Fitted to the terminal: every line of every cell cut to its column's width.
    let (rows, header) = match width {
        Some(total) => {
            widths = fit_widths(widths, total);
            let fit = |row: &[String]| -> Vec<String> {
                row.iter()
                    .zip(&widths)
                    .map(|(cell, width)| {
                        cell.split('\n')
                            .map(|line| cut(line, *width))
                            .collect::<Vec<_>>()
                            .join("\n")
                    })
                    .collect()
            };
            (rows.iter().map(|row| fit(row)).collect(), header.map(fit))
        }
        None => (rows, header.map(<[String]>::to_vec)),
    };
    let header = header.as_deref();
    let bold = anstyle::Style::new().bold();
    let write_line =
        |out: &mut dyn std::io::Write, cells: &[&str], is_header: bool| -> std::io::Result<()> {
            for (column, text) in cells.iter().enumerate() {
                out.write_all(if column == 0 { b" " } else { b"  " })?;
                match highlight {
                    Some((at, patterns)) if at == column && !is_header => {
                        let mut buffer = Vec::new();
                        write_highlighted(&mut buffer, text, patterns)?;
                        out.write_all(&buffer)?;
                    }
                    _ if is_header && color => {
                        write!(out, "{}{text}{}", bold.render(), bold.render_reset())?;
                    }
                    _ => out.write_all(text.as_bytes())?,
                }
                if column + 1 < cells.len() {
                    let pad = widths[column].saturating_sub(text.width());
                    write!(out, "{:pad$}", "")?;
                }
            }
            out.write_all(b"\n")
        };
    if let Some(header) = header {
        let cells: Vec<&str> = header.iter().map(String::as_str).collect();
        write_line(out, &cells, true)?;
    }
    for row in &rows {
        let lines: Vec<Vec<&str>> = row.iter().map(|cell| cell.split('\n').collect()).collect();
        let height = lines.iter().map(Vec::len).max().unwrap_or(1);
        for line in 0..height {
            let cells: Vec<&str> =
                lines.iter().map(|cell| cell.get(line).copied().unwrap_or("")).collect();
            write_line(out, &cells, false)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The engine's error as it came, one cause said three times through its layers: said once.
    /// A clause that only looks like another (a different object) is kept.
    #[test]
    fn test_error_message_says_each_cause_once() {
        let cause =
            "failed to open commands/a.parquet: data key k needs a local keyring (--keyring)";
        let engine = format!(
            "External error: {cause}: External error: {cause}: External error: {cause}: {cause}"
        );
        let error = anyhow::anyhow!(engine).context("query failed");
        assert_eq!(error_message(&error), format!("query failed: {cause}"));
        let two = anyhow::anyhow!("failed to open a: gone: failed to open b: gone");
        assert_eq!(error_message(&two), "failed to open a: gone: failed to open b: gone");
        let plain = anyhow::anyhow!("lake x does not exist");
        assert_eq!(error_message(&plain), "lake x does not exist");
    }

    /// A closed pipe is found under what passes the printer's error on: the read library's
    /// row sink error, a context over it; any other printer error is not one.
    #[test]
    fn test_a_broken_pipe_is_found_under_the_row_sink_error() {
        let pipe = || anyhow::Error::from(std::io::Error::from(std::io::ErrorKind::BrokenPipe));
        let csv = csv::Error::from(std::io::Error::from(std::io::ErrorKind::BrokenPipe));
        for printer in [pipe(), pipe().context("failed to write"), anyhow::Error::from(csv)] {
            let passed = anyhow::Error::from(sink_error(printer)).context("--after");
            assert!(is_broken_pipe(&passed), "{passed:#}");
        }
        let other = sink_error(anyhow::anyhow!("failed to format a value"));
        assert!(!is_broken_pipe(&anyhow::Error::from(other)));
    }

    /// A table wider than the terminal: the widest columns are narrowed first, none below the
    /// floor, and cut cells end with `…` within their width (wide characters counted as two).
    #[test]
    fn test_tables_fit_the_width_and_cut_cells_with_an_ellipsis() {
        assert_eq!(fit_widths(vec![10, 50, 8], 80), vec![10, 50, 8], "fits already");
        let fitted = fit_widths(vec![10, 50, 8], 40);
        assert_eq!(fitted, vec![10, 17, 8]);
        assert_eq!(fitted.iter().sum::<usize>() + 2 * 2 + 1, 40, "one space, two between");
        assert_eq!(fit_widths(vec![30, 30, 30], 20), vec![6, 6, 6], "the floor");
        assert_eq!(cut("short", 10), "short");
        assert_eq!(cut("rm -rf /var/tmp/build-1", 10), "rm -rf /v…");
        assert_eq!(cut("日本語のコマンド", 7), "日本語…");
        assert!(cut("日本語のコマンド", 7).width() <= 7);
        let mut out = Vec::new();
        let rows =
            vec![vec!["a".to_string(), "x".repeat(100)], vec!["b".to_string(), "y\nz".repeat(3)]];
        let header = ["K".to_string(), "TEXT".to_string()];
        let style = TableStyle { highlight: None, color: false, width: Some(30) };
        render_table(&mut out, Some(&header), &rows, style).expect("render");
        let text = String::from_utf8(out).expect("utf-8");
        assert!(text.lines().all(|line| line.width() <= 30), "{text}");
        assert!(text.contains(&format!(" a  {}…", "x".repeat(25))), "{text}");
        assert_eq!(text.lines().count(), 1 + 1 + 4, "a cell's lines stay lines: {text}");
    }

    #[test]
    fn test_table_is_aligned_without_trailing_spaces() {
        let header = vec!["A".to_string(), "BB".to_string()];
        let rows = vec![
            vec!["xyz".to_string(), "1".to_string()],
            vec!["é".to_string(), "two\nlines".to_string()],
        ];
        let mut out = Vec::new();
        render_table(
            &mut out,
            Some(&header),
            &rows,
            TableStyle { highlight: None, color: false, width: None },
        )
        .expect("render");
        let expected = " A    BB\n xyz  1\n é    two\n      lines\n";
        assert_eq!(String::from_utf8(out).expect("utf8"), expected);
    }

    #[test]
    fn test_auto_colour_follows_no_color_clicolor_force_and_term() {
        let with = |vars: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                vars.iter().find(|(key, _)| *key == name).map(|(_, value)| value.into())
            }
        };
        assert!(auto_color(true, with(&[("TERM", "xterm")])));
        assert!(auto_color(true, with(&[])));
        assert!(!auto_color(false, with(&[("TERM", "xterm")])));
        // CI=1 does not colour a dumb terminal (anstream's rule would).
        assert!(!auto_color(true, with(&[("TERM", "dumb"), ("CI", "1")])));
        assert!(!auto_color(true, with(&[("NO_COLOR", "1"), ("CLICOLOR_FORCE", "1")])));
        assert!(auto_color(true, with(&[("NO_COLOR", ""), ("TERM", "xterm")])));
        assert!(auto_color(false, with(&[("CLICOLOR_FORCE", "1")])));
        assert!(!auto_color(false, with(&[("CLICOLOR_FORCE", "0")])));
    }

    #[test]
    fn test_matches_are_highlighted_and_merged() {
        let patterns = vec![
            regex::Regex::new("rm").expect("regex"),
            regex::Regex::new("m -r").expect("regex"),
        ];
        assert_eq!(match_ranges("sudo rm -rf /", &patterns), vec![(5, 10)]);
        let mut out = Vec::new();
        write_highlighted(&mut out, "a rm b", &patterns[..1]).expect("write");
        assert_eq!(String::from_utf8(out).expect("utf8"), "a \u{1b}[1m\u{1b}[31mrm\u{1b}[0m b");
    }

    #[test]
    fn test_control_characters_are_made_visible() {
        let cases = [("a\u{1b}[2Jb", "a\u{241b}[2Jb"), ("x\ny", "x\ny"), ("\u{7f}", "\u{2421}")];
        for (input, expected) in cases {
            assert_eq!(visible(input), expected, "{input:?}");
        }
    }

    #[test]
    fn test_json_values_keep_their_types() {
        use datafusion::arrow::array::{BinaryArray, BooleanArray, StringArray, UInt32Array};
        let number = UInt32Array::from(vec![Some(7), None]);
        assert_eq!(cell_json(&number, 0).expect("json"), serde_json::json!(7));
        assert_eq!(cell_json(&number, 1).expect("json"), serde_json::Value::Null);
        let flag = BooleanArray::from(vec![true]);
        assert_eq!(cell_json(&flag, 0).expect("json"), serde_json::json!(true));
        let text = StringArray::from(vec!["ls"]);
        assert_eq!(cell_json(&text, 0).expect("json"), serde_json::json!("ls"));
        let bytes = BinaryArray::from(vec![&b"ok"[..], &[0xff, 0x00][..]]);
        assert_eq!(cell_json(&bytes, 0).expect("json"), serde_json::json!({"text": "ok"}));
        assert_eq!(cell_json(&bytes, 1).expect("json"), serde_json::json!({"bytes": "/wA="}));
    }
}
