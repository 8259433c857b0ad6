//! A whole file of arbitrary bytes: open it, write to it, read from it. Errors are fine; panics are not.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let now = 1_700_000_000;
    if let Ok(mut db) = carbide_whisper::Whisper::open(data.to_vec()) {
        let _ = db.update_many(&[(now - 5, 1.0), (now - 100, 2.0), (now - 100_000, 3.0)], now);
        let _ = db.update(4.0, Some(now - 1), now);
        let _ = db.fetch(now - 86_400, None, now, None);
    }
});
