//! Pickle VM: arbitrary bytes (with and without a protocol header) never panic or exhaust
//! memory, and whatever decodes re-encodes to something that decodes to the same value.
#![no_main]

use carbide_protocol::framing::{PICKLE_MAX_FRAME, frames};
use carbide_protocol::pickle::{Limits, Protocol, dumps_with, loads};
use carbide_protocol::points::decode_points;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for frame in frames(data, PICKLE_MAX_FRAME).flatten() {
        let _ = decode_points(frame, 0.0, &Limits::default());
    }
    if let Ok(v) = loads(data) {
        let again = loads(&dumps_with(&v, Protocol::V5)).map(|a| format!("{a:?}"));
        // NaN never equals itself; compare the Debug renderings instead.
        assert_eq!(again, Ok(format!("{v:?}")));
    }
});
