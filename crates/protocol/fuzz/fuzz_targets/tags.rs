//! Tagged names: parsing never panics and the normal form is stable wherever carbon's is.
#![no_main]

use carbide_protocol::tags::{TaggedSeries, filesystem_path};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|name: &str| {
    if let Ok(series) = TaggedSeries::parse(name) {
        let path = series.path();
        // Carbon's own normal form is not a fixpoint when the name holds a `;` (OpenMetrics lets
        // one in: `a;{t="v"}` is `a;;t=v`) or when the sorted tags happen to read as OpenMetrics
        // (`a;u=v"};t=x{` is `a;t=x{;u=v"}`). We keep carbon's paths; elsewhere it must be one.
        if !series.metric.contains(';') && !(path.ends_with("\"}") && path.contains('{')) {
            assert_eq!(TaggedSeries::parse(&path).map(|s| s.path()), Ok(path.clone()));
        }
        let _ = filesystem_path(&path, true);
    }
});
