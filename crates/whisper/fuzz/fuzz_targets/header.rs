//! The header parser must refuse, never panic, whatever bytes a file starts with.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(h) = carbide_whisper::Header::parse(data) {
        let _ = h.check_layout(data.len() as u64);
        assert_eq!(carbide_whisper::Header::parse(&h.encode()).ok(), Some(h));
    }
});
