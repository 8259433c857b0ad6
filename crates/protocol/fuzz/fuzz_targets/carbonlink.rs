//! Carbonlink requests: any frame decodes to a request or a typed error, never a panic.
#![no_main]

use carbide_protocol::carbonlink::{Reply, Request, decode_request};
use carbide_protocol::pickle::Limits;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(Request::Unknown { kind }) = decode_request(data, &Limits::default()) {
        let _ = Reply::invalid_type(&kind).encode();
    }
});
