//! carbon's whitelist and blacklist in front of the relay and the aggregator, as carbon applies
//! them in every daemon's receivers (protocols.py `metricReceived`): a name matching a blacklist
//! pattern is dropped (`blacklistMatches`), then, if the whitelist has patterns, a name matching
//! none is dropped (`whitelistRejects`). Dropped points are not `metricsReceived`. carbon drops a
//! NaN value or an unusable timestamp only after the lists, so such a point still counts here
//! when the lists drop it ([`Sink::listed_out`]), and is not bad input then. An empty or
//! missing list lets everything through; carbon reads both files only with USE_WHITELIST.
//!
//! The lists are swapped whole on reload (the caller re-reads the files when they change, as
//! carbon does every 10 s); a point is checked against one version of both.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use carbide_config::lists::RegexList;
use parking_lot::RwLock;

use crate::{Incoming, Sink};

/// The two lists in force.
#[derive(Debug, Default, Clone)]
pub struct Lists {
    /// Names matching any of these are dropped.
    pub blacklist: Option<RegexList>,
    /// With patterns, names matching none of these are dropped.
    pub whitelist: Option<RegexList>,
}

/// The lists in force and what they dropped; shared by the receivers and the reload loop.
#[derive(Debug, Default)]
pub struct ListFilter {
    lists: RwLock<Arc<Lists>>,
    /// Points dropped by the blacklist (carbon's `blacklistMatches`).
    pub blacklist_matches: AtomicU64,
    /// Points dropped for matching no whitelist pattern (`whitelistRejects`).
    pub whitelist_rejects: AtomicU64,
}

impl ListFilter {
    /// A filter applying `lists`.
    pub fn new(lists: Lists) -> ListFilter {
        ListFilter {
            lists: RwLock::new(Arc::new(lists)),
            ..ListFilter::default()
        }
    }

    /// Applies `lists` from now on.
    pub fn set(&self, lists: Lists) {
        *self.lists.write() = Arc::new(lists);
    }

    /// The lists in force, or `None` when both let everything through (the fast path).
    fn active(&self) -> Option<Arc<Lists>> {
        let l = self.lists.read().clone();
        let some = |r: &Option<RegexList>| r.as_ref().is_some_and(|r| !r.is_empty());
        (some(&l.blacklist) || some(&l.whitelist)).then_some(l)
    }

    /// Whether `name` passes `lists`, counting a drop.
    fn admits(&self, lists: &Lists, name: &str) -> bool {
        if lists.blacklist.as_ref().is_some_and(|b| b.contains(name)) {
            self.blacklist_matches.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        if lists
            .whitelist
            .as_ref()
            .is_some_and(|w| !w.is_empty() && !w.contains(name))
        {
            self.whitelist_rejects.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        true
    }
}

/// A [`Sink`] that only passes on what the lists admit.
pub struct Filtered {
    /// The lists.
    pub filter: Arc<ListFilter>,
    /// Where admitted points go.
    pub inner: Arc<dyn Sink>,
}

impl Sink for Filtered {
    fn point(&self, name: &str, value: f64, timestamp: f64) -> bool {
        match self.filter.active() {
            Some(l) if !self.filter.admits(&l, name) => false,
            _ => self.inner.point(name, value, timestamp),
        }
    }
    fn points(&self, batch: &[Incoming<'_>]) {
        let Some(l) = self.filter.active() else {
            self.inner.points(batch);
            return;
        };
        let kept: Vec<Incoming<'_>> = batch
            .iter()
            .filter(|p| self.filter.admits(&l, p.name))
            .copied()
            .collect();
        if !kept.is_empty() {
            self.inner.points(&kept);
        }
    }
    fn should_pause(&self) -> bool {
        self.inner.should_pause()
    }
    fn bad_input(&self, peer: &str, what: &str) {
        self.inner.bad_input(peer, what);
    }
    fn listed_out(&self, name: &str) -> bool {
        self.filter
            .active()
            .is_some_and(|l| !self.filter.admits(&l, name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use carbide_config::lists::parse_regex_list;
    use parking_lot::Mutex;

    #[derive(Default)]
    struct Record(Mutex<Vec<String>>);
    impl Sink for Record {
        fn point(&self, name: &str, _: f64, _: f64) -> bool {
            self.0.lock().push(name.to_string());
            true
        }
        fn should_pause(&self) -> bool {
            false
        }
        fn bad_input(&self, _: &str, _: &str) {}
    }

    fn list(text: &str) -> Option<RegexList> {
        Some(parse_regex_list("x.conf", text).unwrap().0)
    }

    #[test]
    fn blacklist_first_then_a_non_empty_whitelist_and_reload() {
        let rec = Arc::new(Record::default());
        let filter = Arc::new(ListFilter::new(Lists {
            blacklist: list("\\.noisy\\.\n"),
            whitelist: list("^app\\.\n"),
        }));
        let sink = Filtered {
            filter: filter.clone(),
            inner: rec.clone(),
        };
        let batch: Vec<Incoming<'_>> = ["app.a", "app.noisy.x", "db.b", "app.c"]
            .iter()
            .map(|n| Incoming {
                name: n,
                value: 1.0,
                timestamp: 1.0,
            })
            .collect();
        sink.points(&batch);
        assert_eq!(*rec.0.lock(), ["app.a", "app.c"]);
        assert_eq!(filter.blacklist_matches.load(Ordering::Relaxed), 1);
        assert_eq!(filter.whitelist_rejects.load(Ordering::Relaxed), 1);
        // A NaN value is checked against the lists before it is dropped, as carbon does.
        assert!(sink.listed_out("app.noisy.nan"));
        assert!(sink.listed_out("db.nan"));
        assert!(!sink.listed_out("app.nan"));
        assert_eq!(filter.blacklist_matches.load(Ordering::Relaxed), 2);
        assert_eq!(filter.whitelist_rejects.load(Ordering::Relaxed), 2);
        assert_eq!(rec.0.lock().len(), 2, "nothing passed on");
        // An empty whitelist lets everything through, as carbon's bool(RegexList) says.
        filter.set(Lists {
            blacklist: None,
            whitelist: list("# nothing\n"),
        });
        assert!(sink.point("db.b", 1.0, 1.0));
        assert_eq!(rec.0.lock().last().map(String::as_str), Some("db.b"));
    }
}
