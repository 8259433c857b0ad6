//! Protobuf receiver: arbitrary frames never panic, every decoded point borrows a name from the
//! frame, and whatever decodes re-encodes to a payload that decodes to the same points.
#![no_main]

use carbide_protocol::framing::frames;
use carbide_protocol::protobuf::{PROTOBUF_MAX_FRAME, decode_payload, encode_payload};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for frame in frames(data, PROTOBUF_MAX_FRAME).flatten() {
        let _ = decode_payload(frame);
    }
    if let Ok(d) = decode_payload(data) {
        assert!(d.points.len() <= data.len() / 2);
        // one metric per point: the re-encoding keeps order, names and value bits
        let owned: Vec<[(u32, f64); 1]> = d.points.iter().map(|p| [(p.timestamp, p.value)]).collect();
        let refs: Vec<(&str, &[(u32, f64)])> = d
            .points
            .iter()
            .zip(&owned)
            .map(|(p, o)| (p.name, &o[..]))
            .collect();
        let again = encode_payload(&refs);
        let back = decode_payload(&again).map(|b| {
            b.points
                .iter()
                .map(|p| (p.name, p.timestamp, p.value.to_bits()))
                .collect::<Vec<_>>()
        });
        let want: Vec<_> = d
            .points
            .iter()
            .map(|p| (p.name, p.timestamp, p.value.to_bits()))
            .collect();
        assert_eq!(back, Ok(want));
    }
});
