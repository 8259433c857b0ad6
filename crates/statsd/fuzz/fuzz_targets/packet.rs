//! Any bytes as UDP and TCP packets, then two flushes: nothing may panic.
#![no_main]

use carbide_statsd::{Config, Statsd};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let config = Config {
        percent_threshold: carbide_statsd::config::PercentThreshold::Many(vec![90.0, -10.0, 150.0]),
        max_keys: Some(1000),
        ..Config::default()
    };
    let Ok(mut engine) = Statsd::new(config, 1_700_000_000_000) else {
        return;
    };
    for chunk in data.split(|b| *b == 0) {
        engine.handle_packet(chunk);
        engine.handle_tcp_packet(chunk);
    }
    let _ = engine.flush(1_700_000_010_000).to_text();
    let _ = engine.flush(1_700_000_020_000).to_text();
});
