//! Tagged names: parsing never panics and the normal form is stable.
#![no_main]

use carbide_protocol::tags::{TaggedSeries, filesystem_path};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|name: &str| {
    if let Ok(series) = TaggedSeries::parse(name) {
        let path = series.path();
        assert_eq!(TaggedSeries::parse(&path).map(|s| s.path()), Ok(path.clone()));
        let _ = filesystem_path(&path, true);
    }
});
