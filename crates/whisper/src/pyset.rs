//! The iteration order of a CPython 3.11 `set` of ints.
//!
//! whisper.py propagates an `update_many` to a coarser archive by iterating `set(lowerIntervals)`. When
//! that archive is still empty, the first interval that propagates becomes its base slot, so the order
//! of that iteration decides where every later point lands on disk. Byte-compatible files therefore need
//! the same order, which is CPython's open-addressing table order: slots probed linearly (9 at a time),
//! then perturbed, the table growing fourfold once it is three fifths full.
//! `tests/python_differential.rs` checks this model against the real interpreter.

const MIN_SIZE: usize = 8;
const LINEAR_PROBES: usize = 9;
const PERTURB_SHIFT: u32 = 5;

/// Python's `hash()` of an int, for the range a timestamp can take.
fn py_hash(x: i64) -> u64 {
    // hash(n) == n for |n| < 2**61 - 1, except that -1 is reserved as the C error value.
    const MODULUS: i64 = (1 << 61) - 1;
    let h = x % MODULUS;
    let h = if h == -1 { -2 } else { h };
    h as u64
}

/// A table slot: the key and its hash, or empty.
type Slot = Option<(i64, u64)>;

/// Puts a key known to be absent into `table`, the way CPython's `set_insert_clean` does.
fn insert_clean(table: &mut [Slot], key: i64, hash: u64) {
    let mask = table.len() - 1;
    let mut perturb = hash;
    let mut i = (hash as usize) & mask;
    loop {
        let probes = if i + LINEAR_PROBES <= mask {
            LINEAR_PROBES
        } else {
            0
        };
        if let Some(slot) = table[i..=i + probes].iter_mut().find(|s| s.is_none()) {
            *slot = Some((key, hash));
            return;
        }
        perturb >>= PERTURB_SHIFT;
        i = (i.wrapping_mul(5).wrapping_add(1).wrapping_add(perturb as usize)) & mask;
    }
}

/// The order in which `for x in set(values)` visits the distinct values, as CPython 3.11 gives it.
pub fn iteration_order(values: &[i64]) -> Vec<i64> {
    let mut table: Vec<Slot> = vec![None; MIN_SIZE];
    let mut used = 0usize;
    for &key in values {
        let hash = py_hash(key);
        let mask = table.len() - 1;
        let mut perturb = hash;
        let mut i = (hash as usize) & mask;
        let found = 'probe: loop {
            let probes = if i + LINEAR_PROBES <= mask {
                LINEAR_PROBES
            } else {
                0
            };
            for (j, slot) in table.iter().enumerate().skip(i).take(probes + 1) {
                match slot {
                    None => break 'probe Some(j),
                    Some((k, _)) if *k == key => break 'probe None,
                    Some(_) => {}
                }
            }
            perturb >>= PERTURB_SHIFT;
            i = (i.wrapping_mul(5).wrapping_add(1).wrapping_add(perturb as usize)) & mask;
        };
        let Some(slot) = found else { continue };
        table[slot] = Some((key, hash));
        used += 1;
        // No deletions happen here, so CPython's `fill` equals `used`.
        if used * 5 >= mask * 3 {
            let min_used = if used > 50_000 { used * 2 } else { used * 4 };
            let mut size = MIN_SIZE;
            while size <= min_used {
                size <<= 1;
            }
            let mut grown: Vec<Slot> = vec![None; size];
            for (k, h) in table.iter().flatten() {
                insert_clean(&mut grown, *k, *h);
            }
            table = grown;
        }
    }
    table.into_iter().flatten().map(|(k, _)| k).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_sets_iterate_by_slot() {
        // In an 8-slot table, small ints sit at their own value.
        assert_eq!(iteration_order(&[5, 3, 1, 3]), vec![1, 3, 5]);
        // 8 and 0 collide on slot 0; 8 arrives first, 0 probes linearly... but 0+9 > mask,
        // so it is perturbed instead: (0*5 + 1 + 0) & 7 = 1.
        assert_eq!(iteration_order(&[8, 0]), vec![8, 0]);
    }

    #[test]
    fn keeps_every_distinct_value() {
        let values: Vec<i64> = (0..1000).map(|i| (i * 7919) % 613 * 60).collect();
        let mut order = iteration_order(&values);
        order.sort_unstable();
        let mut expected = values.clone();
        expected.sort_unstable();
        expected.dedup();
        assert_eq!(order, expected);
    }
}
