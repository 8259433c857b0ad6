//! Line protocol: the splitter and the parser must never panic, and every point is sane.
#![no_main]

use carbide_protocol::line::{LineSplitter, datagram_lines, parse_line, parse_line_str};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut splitter = LineSplitter::new(64);
    let mut lines = splitter.split(data);
    for line in lines.by_ref().flatten() {
        if let Ok(p) = parse_line(line, 1.0) {
            assert!(!p.name.is_empty() && !p.value.is_nan() && p.timestamp.is_finite());
        }
    }
    assert!(lines.consumed() <= data.len());
    if let Ok(it) = datagram_lines(data) {
        for line in it {
            let _ = parse_line_str(line, 1.0);
        }
    }
});
