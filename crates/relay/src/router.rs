//! Which destinations a metric goes to, as carbon-relay decides it (RELAY_METHOD).
//!
//! Destinations are indexes into carbon.conf's DESTINATIONS, so the caller keeps its queues in a
//! `Vec`. Rules may name destinations that DESTINATIONS lacks: carbon has no client for them and
//! sends nothing there, and neither do we (the config crate warns about them at start).

use carbide_config::carbon_conf::RelayMethod;
use carbide_config::{AggregationRule, CarbonSettings, Destination, RelayRules};
use carbide_routing::{Algorithm, CarbonHash, HashRing, NodeId, Ring};

use crate::RelayError;

/// A configured router.
#[derive(Debug, Clone)]
pub enum Router {
    /// relay-rules.conf: each rule's destinations, mapped to DESTINATIONS indexes.
    Rules {
        /// The parsed rules.
        rules: RelayRules,
        /// DESTINATIONS, to map rule destinations to indexes.
        destinations: Vec<Destination>,
    },
    /// consistent-hashing or fast-hashing over DESTINATIONS.
    Ring {
        /// The ring.
        ring: HashRing,
        /// REPLICATION_FACTOR.
        replicas: usize,
    },
    /// aggregated-consistent-hashing: the union of the destinations of every aggregate the metric
    /// feeds, or of the metric itself when it feeds none.
    Aggregated {
        /// The ring.
        ring: HashRing,
        /// REPLICATION_FACTOR.
        replicas: usize,
        /// aggregation-rules.conf.
        rules: Vec<AggregationRule>,
    },
}

/// The routing crate's destination for a config destination (same host text, port, instance).
pub fn ring_destination(d: &Destination) -> carbide_routing::Destination {
    carbide_routing::Destination {
        host: d.host.clone(),
        port: d.port,
        instance: d.instance.clone(),
    }
}

/// ROUTER_HASH_TYPE, with carbon's per-method default.
fn hash_type(settings: &CarbonSettings, fast: bool) -> Result<CarbonHash, RelayError> {
    match settings.router_hash_type.as_deref() {
        None if fast => Ok(CarbonHash::Mmh3Ch),
        None | Some("carbon_ch") => Ok(CarbonHash::CarbonCh),
        Some("fnv1a_ch") => Ok(CarbonHash::Fnv1aCh),
        Some("mmh3_ch") => Ok(CarbonHash::Mmh3Ch),
        Some(other) => Err(RelayError::Setting(format!(
            "ROUTER_HASH_TYPE = {other}: must be carbon_ch, fnv1a_ch or mmh3_ch"
        ))),
    }
}

impl Router {
    /// Builds the router `settings.relay_method` names; `rules` and `agg_rules` are the parsed
    /// relay-rules.conf and aggregation-rules.conf (only the method's own file is needed).
    pub fn from_settings(
        settings: &CarbonSettings,
        rules: Option<RelayRules>,
        agg_rules: Vec<AggregationRule>,
    ) -> Result<Router, RelayError> {
        let dests: Vec<_> = settings.destinations.iter().map(ring_destination).collect();
        let replicas = usize::try_from(settings.replication_factor.max(1)).unwrap_or(1);
        let diverse_replicas = settings.diverse_replicas;
        Ok(match settings.relay_method {
            RelayMethod::Rules => Router::Rules {
                rules: rules.ok_or_else(|| {
                    RelayError::Setting("RELAY_METHOD = rules needs relay-rules.conf".into())
                })?,
                destinations: settings.destinations.clone(),
            },
            RelayMethod::ConsistentHashing => Router::Ring {
                ring: HashRing::build(
                    Algorithm::Carbon {
                        hash: hash_type(settings, false)?,
                        diverse_replicas,
                    },
                    dests,
                )?,
                replicas,
            },
            RelayMethod::FastHashing => Router::Ring {
                ring: HashRing::build(
                    Algorithm::CarbonFast {
                        hash: hash_type(settings, true)?,
                        diverse_replicas,
                    },
                    dests,
                )?,
                replicas,
            },
            RelayMethod::AggregatedConsistentHashing | RelayMethod::FastAggregatedHashing => {
                let fast = settings.relay_method == RelayMethod::FastAggregatedHashing;
                let hash = hash_type(settings, fast)?;
                let algorithm = if fast {
                    Algorithm::CarbonFast {
                        hash,
                        diverse_replicas,
                    }
                } else {
                    Algorithm::Carbon {
                        hash,
                        diverse_replicas,
                    }
                };
                Router::Aggregated {
                    ring: HashRing::build(algorithm, dests)?,
                    replicas,
                    rules: agg_rules,
                }
            }
        })
    }

    /// Writes the destination indexes for `metric` into `out` (cleared first), without repeats,
    /// primary first. `scratch` is reused between calls.
    pub fn route(&self, metric: &str, out: &mut Vec<usize>, scratch: &mut Vec<NodeId>) {
        out.clear();
        match self {
            Router::Rules { rules, destinations } => {
                for d in rules.destinations_for(metric) {
                    if let Some(i) = destinations.iter().position(|x| x == d)
                        && !out.contains(&i)
                    {
                        out.push(i);
                    }
                }
            }
            Router::Ring { ring, replicas } => {
                ring.route(metric.as_bytes(), *replicas, scratch);
                out.extend(scratch.iter().map(|n| n.index()));
            }
            Router::Aggregated {
                ring,
                replicas,
                rules,
            } => {
                let names: Vec<String> = rules.iter().filter_map(|r| r.aggregate_metric(metric)).collect();
                let mut union = Vec::new();
                if names.is_empty() {
                    ring.route(metric.as_bytes(), *replicas, &mut union);
                } else {
                    ring.route_union(names.iter().map(|n| n.as_bytes()), *replicas, &mut union, scratch);
                }
                out.extend(union.iter().map(|n| n.index()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use carbide_config::{ConfigEnv, parse_aggregation_rules, parse_carbon_conf, parse_relay_rules};

    fn settings(extra: &str) -> CarbonSettings {
        let text =
            format!("[relay]\nDESTINATIONS = 127.0.0.1:2004:a, 127.0.0.1:2104:b, 127.0.0.2:2204:c\n{extra}");
        let env = ConfigEnv {
            graphite_root: "/tmp/g".into(),
            storage_dir: None,
            home: None,
        };
        match parse_carbon_conf("/tmp/g/conf/carbon.conf", &text, "relay", None, &env) {
            Ok((s, _)) => s,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn rules_map_to_destination_indexes_and_drop_unknown() {
        let s = settings("RELAY_METHOD = rules\n");
        let rules = parse_relay_rules(
            "relay-rules.conf",
            "[a]\npattern = ^foo\\.\ndestinations = 127.0.0.2:2204:c, 10.9.9.9:1:x\ncontinue = true\n\
             [b]\npattern = foo\ndestinations = 127.0.0.1:2004:a, 127.0.0.2:2204:c\n\
             [default]\ndefault = true\ndestinations = 127.0.0.1:2104:b\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let r = Router::from_settings(&s, Some(rules), vec![]).unwrap_or_else(|e| panic!("{e}"));
        let (mut out, mut scratch) = (vec![], vec![]);
        r.route("foo.bar", &mut out, &mut scratch);
        assert_eq!(out, vec![2, 0]);
        r.route("xfoo", &mut out, &mut scratch);
        assert_eq!(out, vec![0, 2]);
        r.route("other", &mut out, &mut scratch);
        assert_eq!(out, vec![1]);
    }

    #[test]
    fn consistent_hashing_matches_the_routing_crate_with_diverse_replicas() {
        let s = settings("RELAY_METHOD = consistent-hashing\nREPLICATION_FACTOR = 2\n");
        let r = Router::from_settings(&s, None, vec![]).unwrap_or_else(|e| panic!("{e}"));
        let ring = HashRing::build(
            Algorithm::Carbon {
                hash: CarbonHash::CarbonCh,
                diverse_replicas: true,
            },
            s.destinations.iter().map(ring_destination).collect(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let (mut out, mut scratch, mut want) = (vec![], vec![], vec![]);
        for i in 0..500 {
            let m = format!("servers.host{i}.cpu");
            r.route(&m, &mut out, &mut scratch);
            ring.route(m.as_bytes(), 2, &mut want);
            assert_eq!(out, want.iter().map(|n| n.index()).collect::<Vec<_>>());
            // Diverse replicas: two different servers, so never a and b (both 127.0.0.1) together.
            assert_eq!(out.len(), 2);
            assert!(out.contains(&2), "{m}: {out:?}");
        }
    }

    #[test]
    fn aggregated_hashing_routes_by_the_aggregate_names() {
        let s = settings("RELAY_METHOD = aggregated-consistent-hashing\n");
        let (rules, _) = parse_aggregation_rules(
            "aggregation-rules.conf",
            "<a>.total (60) = sum <a>.*.x\n<a>.max (60) = max <a>.*.x\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let r = Router::from_settings(&s, None, rules).unwrap_or_else(|e| panic!("{e}"));
        let ring = HashRing::build(
            Algorithm::Carbon {
                hash: CarbonHash::CarbonCh,
                diverse_replicas: true,
            },
            s.destinations.iter().map(ring_destination).collect(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let (mut out, mut scratch, mut want) = (vec![], vec![], vec![]);
        for i in 0..100 {
            let m = format!("app{i}.h1.x");
            r.route(&m, &mut out, &mut scratch);
            let mut expect = vec![];
            for agg in [format!("app{i}.total"), format!("app{i}.max")] {
                ring.route(agg.as_bytes(), 1, &mut want);
                for n in &want {
                    if !expect.contains(&n.index()) {
                        expect.push(n.index());
                    }
                }
            }
            assert_eq!(out, expect);
            // Unaggregated metrics route by their own name.
            let raw = format!("raw{i}");
            r.route(&raw, &mut out, &mut scratch);
            ring.route(raw.as_bytes(), 1, &mut want);
            assert_eq!(out, vec![want[0].index()]);
        }
    }
}
