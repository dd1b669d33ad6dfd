//! Fuzzes `sessionlake_indexer::parse_session` in every input form.
//!
//! Checks, for any bytes and each of the three SSM forms:
//! - parsing never panics (an `Err` is fine: it means "not a session in this form");
//! - parsing is deterministic: the same bytes give the same result twice;
//! - every command's `raw_offset + raw_len` lies inside the input, so a reader of the lake can
//!   always slice the raw transcript with it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sessionlake_indexer::{InputForm, SessionContext, parse_session};

const FORMS: [InputForm; 3] = [
    InputForm::S3Transcript,
    InputForm::CloudwatchUpload,
    InputForm::CloudwatchStream,
];

fuzz_target!(|data: &[u8]| {
    let context = SessionContext::new("fuzz-0123456789abcdef0");
    for form in FORMS {
        let first = parse_session(form, data, &context);
        let second = parse_session(form, data, &context);
        assert_eq!(first, second, "{form:?}: parsing the same bytes twice differs");
        let Ok(parsed) = first else { continue };
        for (index, command) in parsed.commands.iter().enumerate() {
            let end = command.raw_offset.checked_add(command.raw_len);
            assert!(
                end.is_some_and(|end| end <= data.len() as u64),
                "{form:?}: command {index} ({:?}) has raw_offset {} + raw_len {} beyond the \
                 {}-byte input",
                command.command,
                command.raw_offset,
                command.raw_len,
                data.len(),
            );
        }
    }
});
