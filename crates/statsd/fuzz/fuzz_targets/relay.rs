//! Any bytes through StatsRelay's router: nothing may panic, and every line sent lands on the
//! backend its key hashes to.
#![no_main]

use carbide_statsd::relay::Relay;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let Ok(relay) = Relay::new(usize::from(n % 7) + 1, 64, "statsrelay", None) else {
        return;
    };
    for packet in relay.route(rest) {
        for line in packet.data.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let colon = line.iter().position(|b| *b == b':');
            assert!(colon.is_some(), "a line without ':' was forwarded");
            let key = &line[..colon.unwrap_or(0)];
            assert_eq!(relay.backend_for(key), packet.backend);
        }
    }
});
