//! A top-down merge sort with glibc's split and tie rule, so that orders built with carbon-c-relay's
//! comparators come out as its `qsort` leaves them.
//!
//! glibc (2.36, and every release that kept its merge sort) splits `n` into `n / 2` and the rest and,
//! when merging, takes from the left run while `cmp(left, right) <= 0`. That makes it stable, and it
//! makes the outcome defined even for carbon-c-relay's jump_fnv1a_ch comparator, which is not a
//! total order when numeric and non-numeric instances are mixed. `slice::sort_by` could panic on
//! such a comparator, and would not promise the same order anyway.

use std::cmp::Ordering;

/// Sorts `v` in place with `cmp`, as glibc's `qsort` does. Allocates one scratch buffer.
pub(crate) fn sort<T: Clone, F: FnMut(&T, &T) -> Ordering>(v: &mut [T], mut cmp: F) {
    let mut scratch: Vec<T> = v.to_vec();
    sort_into(v, &mut scratch, &mut cmp);
}

fn sort_into<T: Clone, F: FnMut(&T, &T) -> Ordering>(v: &mut [T], scratch: &mut [T], cmp: &mut F) {
    let n = v.len();
    if n <= 1 {
        return;
    }
    let n1 = n / 2;
    {
        let (left, right) = v.split_at_mut(n1);
        let (sl, sr) = scratch.split_at_mut(n1);
        sort_into(left, sl, cmp);
        sort_into(right, sr, cmp);
    }
    let (mut i, mut j, mut k) = (0, n1, 0);
    while i < n1 && j < n {
        if cmp(&v[i], &v[j]) != Ordering::Greater {
            scratch[k] = v[i].clone();
            i += 1;
        } else {
            scratch[k] = v[j].clone();
            j += 1;
        }
        k += 1;
    }
    while i < n1 {
        scratch[k] = v[i].clone();
        i += 1;
        k += 1;
    }
    // Whatever is left of the right run is already in place.
    v[..k].clone_from_slice(&scratch[..k]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts_and_is_stable() {
        let mut v: Vec<(u8, usize)> = [3u8, 1, 2, 1, 3, 0, 2, 1].iter().copied().zip(0..).collect();
        sort(&mut v, |a, b| a.0.cmp(&b.0));
        assert_eq!(
            v,
            vec![(0, 5), (1, 1), (1, 3), (1, 7), (2, 2), (2, 6), (3, 0), (3, 4)]
        );
    }

    #[test]
    fn tolerates_a_comparator_that_is_not_an_order() {
        // Rock-paper-scissors: must terminate with a permutation of the input, never panic.
        let mut v = vec![0u8, 1, 2, 0, 1, 2, 2, 1, 0];
        sort(&mut v, |a, b| match (a, b) {
            (x, y) if x == y => Ordering::Equal,
            (0, 1) | (1, 2) | (2, 0) => Ordering::Less,
            _ => Ordering::Greater,
        });
        let mut counts = [0; 3];
        for x in &v {
            counts[*x as usize] += 1;
        }
        assert_eq!(counts, [3, 3, 3]);
    }
}
