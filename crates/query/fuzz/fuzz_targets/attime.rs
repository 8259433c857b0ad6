//! Any bytes through the from/until, offset, glob and tag parsers.
#![no_main]

use carbide_query::attime::{parse_at_time, parse_time_offset};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    let _ = parse_at_time(s, 1_584_275_696, &utc());
    let _ = parse_time_offset(s);
    if let Ok(g) = carbide_query::glob::PathGlob::new(s) {
        let _ = g.matches(s);
    }
    let _ = carbide_query::tags::TagExpr::parse(s);
});

fn utc() -> carbide_query::attime::TimeZone {
    carbide_query::attime::TimeZone::UTC
}
