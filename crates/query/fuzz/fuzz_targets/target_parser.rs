//! Any bytes through the target parser, template expansion and Display round trip.
#![no_main]

use carbide_query::grammar::{parse_target, parse_target_lenient};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    let _ = parse_target_lenient(s);
    if let Ok(expr) = parse_target(s) {
        let _ = carbide_query::template::expand(&expr, &[]);
        let canonical = expr.with_canonical_raw();
        let _ = parse_target(&canonical.to_string());
    }
});
