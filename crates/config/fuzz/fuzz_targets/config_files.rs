//! Every config-file parser on arbitrary text: none may panic, and errors must name the file.
#![no_main]

use carbide_config::carbon_conf::ConfigEnv;
use carbide_config::*;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let env = ConfigEnv { graphite_root: "/".into(), storage_dir: None, home: None };
    let _ = parse_carbon_conf("f", &text, "carbon-relay", Some("a"), &env);
    if let Ok((s, _)) = parse_storage_schemas("f", &text) {
        let _ = s.schema_for("a.b");
    }
    if let Ok((a, _)) = parse_storage_aggregation("f", &text) {
        let _ = a.settings_for("a.b");
    }
    if let Ok(r) = parse_relay_rules("f", &text) {
        let _ = r.destinations_for("a.b");
    }
    if let Ok((rules, _)) = parse_aggregation_rules("f", &text) {
        for r in &rules {
            let _ = r.aggregate_metric("a.b.c");
        }
    }
    if let Ok((rw, _)) = parse_rewrite_rules("f", &text) {
        let _ = RewriteRules::apply(&rw.pre, "a.b.c");
    }
    let _ = parse_regex_list("f", &text);
});
