//! Fuzzes the CloudWatch Logs event decoders: `decode_subscription_payload` (base64 or raw
//! gzip, bounded decompression, JSON), the `get-log-events` file a local folder holds, and
//! `cloudwatch_raw`, which turns events into the bytes of a streamed or uploaded session, then
//! `parse_session` on those bytes.
//!
//! Checks, for any bytes: no panic; decoding is deterministic; the raw bytes built from the
//! events parse without panic, and every command's `raw_offset + raw_len` lies inside them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sessionlake_indexer::input::{GetLogEventsFile, cloudwatch_raw, decode_subscription_payload};
use sessionlake_indexer::{SessionContext, parse_session};

fuzz_target!(|data: &[u8]| {
    let mut event_lists = Vec::new();
    let decoded = decode_subscription_payload(data);
    assert_eq!(decoded, decode_subscription_payload(data), "decoding twice differs");
    if let Ok(payload) = decoded {
        event_lists.push(payload.log_events);
    }
    if let Ok(file) = serde_json::from_slice::<GetLogEventsFile>(data) {
        event_lists.push(file.events);
    }
    let context = SessionContext::new("fuzz-0123456789abcdef0");
    for events in event_lists {
        let (form, raw) = cloudwatch_raw(&events);
        assert_eq!((form, &raw), (cloudwatch_raw(&events).0, &cloudwatch_raw(&events).1));
        let Ok(parsed) = parse_session(form, &raw, &context) else { continue };
        for (index, command) in parsed.commands.iter().enumerate() {
            let end = command.raw_offset.checked_add(command.raw_len);
            assert!(
                end.is_some_and(|end| end <= raw.len() as u64),
                "{form:?}: command {index} ends past the {}-byte raw input",
                raw.len()
            );
        }
    }
});
