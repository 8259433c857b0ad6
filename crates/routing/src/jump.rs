//! carbon-c-relay's `jump_fnv1a_ch`: FNV-1a-64 of the name, then a jump consistent hash over the
//! members, one bucket per member.
//!
//! Bucket order (from carbon-c-relay's comparator, sorted by glibc's merge sort): members with an
//! instance first, compared as integers when both instances are whole decimal numbers and as byte
//! strings otherwise; then members without one, in config order. Further replicas come from
//! xorshifting the hash and jumping again over the remaining buckets, after the chosen bucket was
//! replaced by the last one.

use std::cmp::Ordering;

use crate::destination::{Destination, NodeId};
use crate::error::RingError;
use crate::hash;
use crate::msort;

/// A jump-hash "ring" over the members in carbon-c-relay's bucket order.
#[derive(Debug, Clone)]
pub struct JumpRing {
    destinations: Vec<Destination>,
    /// Bucket number → destination index.
    buckets: Vec<u32>,
}

/// C's `strtol(s, &end, 10)` followed by `*end == '\0'`: the value when the whole text is a number.
fn whole_number(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let mut i = 0;
    // isspace in the C locale: space, \t, \n, \v, \f, \r.
    while i < b.len() && matches!(b[i], b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r') {
        i += 1;
    }
    let negative = match b.get(i) {
        Some(b'-') => {
            i += 1;
            true
        }
        Some(b'+') => {
            i += 1;
            false
        }
        _ => false,
    };
    let digits_start = i;
    let mut value: i64 = 0;
    let mut overflow = false;
    while let Some(&c) = b.get(i).filter(|c| c.is_ascii_digit()) {
        let d = i64::from(c - b'0');
        match value.checked_mul(10).and_then(|v| {
            if negative {
                v.checked_sub(d)
            } else {
                v.checked_add(d)
            }
        }) {
            Some(v) => value = v,
            None => overflow = true,
        }
        i += 1;
    }
    if i == digits_start {
        // No digits: strtol leaves end at the start of the text, so only "" counts (as 0).
        return s.is_empty().then_some(0);
    }
    if i != b.len() {
        return None;
    }
    Some(match (overflow, negative) {
        (false, _) => value,
        (true, false) => i64::MAX,
        (true, true) => i64::MIN,
    })
}

/// carbon-c-relay's bucket comparator; `a` and `b` are (config index, destination).
fn bucket_cmp(a: (u32, &Destination), b: (u32, &Destination)) -> Ordering {
    match (&a.1.instance, &b.1.instance) {
        (None, None) => a.0.cmp(&b.0),
        (None, Some(_)) => Ordering::Greater,
        (Some(_), None) => Ordering::Less,
        (Some(l), Some(r)) => match (whole_number(l), whole_number(r)) {
            // `(int)(val_l - val_r)`: a long difference truncated to int, as the C code does.
            (Some(x), Some(y)) => (x.wrapping_sub(y) as i32).cmp(&0),
            _ => l.as_bytes().cmp(r.as_bytes()),
        },
    }
}

impl JumpRing {
    /// Builds the bucket list from the members in config order.
    pub fn c_relay(destinations: Vec<Destination>) -> Result<Self, RingError> {
        if destinations.is_empty() {
            return Err(RingError::Empty);
        }
        let n = u32::try_from(destinations.len()).map_err(|_| RingError::TooMany(destinations.len()))?;
        let mut seen = std::collections::HashSet::new();
        for d in &destinations {
            if !seen.insert((d.host.as_str(), d.port)) {
                return Err(RingError::DuplicateServer {
                    host: d.host.clone(),
                    port: d.port,
                });
            }
        }
        let mut buckets: Vec<u32> = (0..n).collect();
        let dests = &destinations;
        msort::sort(&mut buckets, |&a, &b| {
            bucket_cmp((a, &dests[a as usize]), (b, &dests[b as usize]))
        });
        Ok(JumpRing {
            destinations,
            buckets,
        })
    }

    /// The destinations, indexed by [`NodeId`].
    pub fn destinations(&self) -> &[Destination] {
        &self.destinations
    }

    /// Destination indexes in bucket order (what carbon-c-relay's `-d` ring dump lists).
    pub fn bucket_order(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.buckets.iter().map(|&b| NodeId(b))
    }

    /// Writes into `out` (cleared first) up to `replicas` destinations for `key`, primary first.
    pub fn route(&self, key: &[u8], replicas: usize, out: &mut Vec<NodeId>) {
        out.clear();
        let n = self.buckets.len();
        let want = replicas.min(n);
        let mut h = hash::fnv1a_64_signed_char(key);
        // First pass: the jump result at each step, over a list that shrinks by one each time.
        for k in 0..want {
            if k > 0 {
                h = hash::jump_next(h);
            }
            out.push(NodeId(hash::jump_bucket(h, (n - k) as u32)));
        }
        // Second pass, last first: map each step's slot back through the earlier removals (slot
        // j_t was refilled from the then-last slot n-t-1) to the original bucket. No scratch list.
        for k in (0..want).rev() {
            let mut slot = out[k].0 as usize;
            for t in (0..k).rev() {
                if slot == out[t].index() {
                    slot = n - t - 1;
                }
            }
            out[k] = NodeId(self.buckets[slot]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strtol_whole_numbers() {
        assert_eq!(whole_number("12"), Some(12));
        assert_eq!(whole_number(" -3"), Some(-3));
        assert_eq!(whole_number("+7"), Some(7));
        assert_eq!(whole_number(""), Some(0));
        assert_eq!(whole_number("foo"), None);
        assert_eq!(whole_number("1a"), None);
        assert_eq!(whole_number("1 "), None);
        assert_eq!(whole_number(" "), None);
        assert_eq!(whole_number("-"), None);
        assert_eq!(whole_number("99999999999999999999"), Some(i64::MAX));
        assert_eq!(whole_number("-99999999999999999999"), Some(i64::MIN));
    }

    #[test]
    fn instances_first_then_config_order() {
        // carbon-c-relay test/issue236.out, cluster jump2.
        let d = |h: &str, p, i: Option<&str>| Destination {
            host: h.into(),
            port: p,
            instance: i.map(Into::into),
        };
        let ring = JumpRing::c_relay(vec![
            d("127.0.0.11", 2003, None),
            d("127.0.0.12", 2004, Some("1")),
            d("127.0.0.13", 2005, None),
            d("127.0.0.14", 2006, Some("2")),
            d("127.0.0.15", 2007, None),
            d("127.0.0.16", 2008, Some("foo")),
            d("127.0.0.17", 2009, None),
        ])
        .unwrap();
        let order: Vec<u32> = ring.bucket_order().map(|n| n.0).collect();
        assert_eq!(order, vec![1, 3, 5, 0, 2, 4, 6]);
    }

    #[test]
    fn numeric_instances_compare_as_numbers() {
        let ring = JumpRing::c_relay(vec![
            Destination::with_instance("a", 1, "10"),
            Destination::with_instance("b", 1, "9"),
            Destination::with_instance("c", 1, "abc"),
            Destination::with_instance("d", 1, "-1"),
        ])
        .unwrap();
        let order: Vec<u32> = ring.bucket_order().map(|n| n.0).collect();
        // Numbers sort numerically among themselves; "abc" compares by bytes with them.
        assert_eq!(order, vec![3, 1, 0, 2]);
    }
}
