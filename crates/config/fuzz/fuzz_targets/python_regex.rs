//! The Python-regex translator and `re.sub` on arbitrary pattern / replacement / text triples.
#![no_main]

use carbide_config::pyre::{PyRegex, Replacement, sub};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: (&str, &str, &str)| {
    let (pattern, repl, text) = data;
    if let Ok(re) = PyRegex::new(pattern) {
        let _ = re.is_match(text);
        if let Ok(r) = Replacement::parse(repl, &re) {
            let _ = sub(&re, &r, text);
        }
    }
});
