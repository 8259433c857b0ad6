//! The StatsD line parser and engine on arbitrary bytes, over UDP and TCP decoding: nothing
//! panics, the key bound holds, every flushed line prints as `name value ts`, and the split
//! flush (lines built outside the server's lock) is the whole flush.
#![no_main]

use carbide_statsd::parse::{Line, TcpFramer, lines, parse_segment};
use carbide_statsd::{Config, FlushTimings, Statsd};
use libfuzzer_sys::fuzz_target;

const MAX_KEYS: usize = 64;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, data)) = data.split_first() else {
        return;
    };
    let sanitize = flags & 1 == 0;
    let json = format!(
        r#"{{"keyNameSanitize": {sanitize}, "deleteIdleStats": {}, "percentThreshold": [90, -10, 150],
            "histogram": [{{"metric": "", "bins": [1, 10, "inf"]}}], "carbideMaxKeys": {MAX_KEYS}}}"#,
        flags & 2 != 0
    );
    let Ok(config) = Config::from_json(&json) else {
        return;
    };
    let Ok(mut e) = Statsd::new(config, 1_700_000_000_000) else {
        return;
    };
    // The parser alone.
    let text = String::from_utf8_lossy(data);
    for raw in lines(&text) {
        let line = Line::parse(raw, sanitize);
        let _ = line.samples().count();
        let _ = parse_segment(raw);
    }
    // UDP datagrams split at 0xff bytes, and the same bytes as a TCP stream.
    for packet in data.split(|b| *b == 0xff) {
        e.handle_packet(packet);
    }
    let mut framer = TcpFramer::default();
    for chunk in data.chunks(7) {
        if let Some(complete) = framer.push(chunk) {
            e.handle_tcp_packet(&complete);
        }
    }
    let held = e.counters().count() + e.gauges().count() + e.timers().count();
    assert!(held <= MAX_KEYS + 8, "{held} keys held");
    let pending = e.begin_flush(1_700_000_010_000, FlushTimings::default());
    e.handle_packet(data);
    let flush = pending.format();
    e.finish_flush(&flush);
    let text = flush.to_text();
    assert_eq!(text.lines().count(), flush.lines.len().max(1));
    assert_eq!(flush.text_len_utf16(), text.encode_utf16().count());
    let _ = e.flush(1_700_000_020_000);
});
