//! Inputs the cargo-fuzz targets (crates/protocol/fuzz) found, minimised, with what they broke.

use carbide_protocol::tags::{TagError, TaggedSeries};

/// fuzz target `tags`: an OpenMetrics name whose metric ends in `;` normalises to `a;;t=v`,
/// which does not parse again. Carbon does the same (its path is the file's hash), so we keep
/// the path and the fuzz target allows it.
#[test]
fn openmetrics_metric_with_a_semicolon_keeps_carbons_path() {
    let series = TaggedSeries::parse(r#"a;{t="v"}"#).expect("carbon accepts it");
    assert_eq!(series.path(), "a;;t=v");
    assert_eq!(
        TaggedSeries::parse("a;;t=v"),
        Err(TagError::InvalidSegment(String::new()))
    );
}
