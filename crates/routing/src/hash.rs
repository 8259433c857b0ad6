//! The hash functions the rings are built from, each matching one real program bit for bit.
//!
//! carbon (Python) feeds bytes to its hashes as unsigned values. carbon-c-relay walks a `char *` and
//! casts each `char` to an unsigned integer; on x86 `char` is signed, so bytes >= 0x80 are
//! sign-extended before the XOR. The `*_signed_char` variants reproduce that, because it changes
//! where any non-ASCII name or instance lands.

use md5::{Digest, Md5};

const FNV32_OFFSET: u32 = 0x811c_9dc5;
const FNV32_PRIME: u32 = 0x0100_0193;
const FNV64_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV64_PRIME: u64 = 0x0000_0100_0000_01b3;

/// carbon_ch position: the first two bytes of MD5(key), big-endian, as carbon and carbon-c-relay compute it.
pub fn md5_position(key: &[u8]) -> u16 {
    let digest = Md5::digest(key);
    u16::from_be_bytes([digest[0], digest[1]])
}

/// FNV-1a, 32 bits, over unsigned bytes (carbon's `fnv32a`).
pub fn fnv1a_32(key: &[u8]) -> u32 {
    key.iter()
        .fold(FNV32_OFFSET, |h, &b| (h ^ u32::from(b)).wrapping_mul(FNV32_PRIME))
}

/// FNV-1a, 32 bits, with each byte sign-extended first (carbon-c-relay's `fnv1a_32` macro on x86).
pub fn fnv1a_32_signed_char(key: &[u8]) -> u32 {
    key.iter().fold(FNV32_OFFSET, |h, &b| {
        // `(unsigned int)(char)b`: the i8 → i32 → u32 casts sign-extend.
        (h ^ (i32::from(b as i8) as u32)).wrapping_mul(FNV32_PRIME)
    })
}

/// FNV-1a, 64 bits, with each byte sign-extended first (carbon-c-relay's `fnv1a_64` macro on x86).
pub fn fnv1a_64_signed_char(key: &[u8]) -> u64 {
    key.iter().fold(FNV64_OFFSET, |h, &b| {
        (h ^ (i64::from(b as i8) as u64)).wrapping_mul(FNV64_PRIME)
    })
}

/// Folds a 32-bit FNV hash into the 16-bit ring, `(h >> 16) ^ (h & 0xffff)`, as both carbon and
/// carbon-c-relay do for fnv1a_ch.
pub fn fold16(h: u32) -> u16 {
    ((h >> 16) ^ (h & 0xffff)) as u16
}

/// Lamping–Veach jump consistent hash: the bucket in `0..buckets` for `key`, with the floating-point
/// steps carbon-c-relay uses (its `jump_bucketpos`). Returns 0 when `buckets` is 0.
pub fn jump_bucket(mut key: u64, buckets: u32) -> u32 {
    let mut b: i64 = -1;
    let mut j: i64 = 0;
    while j < i64::from(buckets) {
        b = j;
        key = key.wrapping_mul(2_862_933_555_777_941_757).wrapping_add(1);
        j = ((b + 1) as f64 * ((1u64 << 31) as f64 / ((key >> 33) + 1) as f64)) as i64;
    }
    // b < buckets by the loop condition; b == -1 only when buckets == 0.
    u32::try_from(b).unwrap_or(0)
}

/// The next hash carbon-c-relay derives for another jump_fnv1a_ch replica (xorshift, then a multiply).
pub fn jump_next(mut h: u64) -> u64 {
    h ^= h >> 12;
    h ^= h << 25;
    h ^= h >> 27;
    h.wrapping_mul(2_685_821_657_736_338_717)
}

/// The member carbon-c-relay's `any_of` cluster picks for `key` among `members` (before failover
/// to the next live one): `fnv1a_32(key) % members`, bytes sign-extended. `None` for no members.
pub fn any_of_member(key: &[u8], members: usize) -> Option<usize> {
    let members = u32::try_from(members).ok().filter(|&m| m > 0)?;
    Some((fnv1a_32_signed_char(key) % members) as usize)
}

/// MurmurHash3 x86 32-bit with seed 0, as a signed integer: what Python's `mmh3.hash(key)` returns
/// (carbon's mmh3_ch position, which may be negative).
pub fn murmur3_32(key: &[u8]) -> i32 {
    const C1: u32 = 0xcc9e_2d51;
    const C2: u32 = 0x1b87_3593;
    let mut h: u32 = 0;
    let mut blocks = key.chunks_exact(4);
    for block in &mut blocks {
        let mut k = u32::from_le_bytes([block[0], block[1], block[2], block[3]]);
        k = k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2);
        h ^= k;
        h = h.rotate_left(13).wrapping_mul(5).wrapping_add(0xe654_6b64);
    }
    let tail = blocks.remainder();
    if !tail.is_empty() {
        let mut k: u32 = 0;
        for (i, &b) in tail.iter().enumerate() {
            k |= u32::from(b) << (8 * i);
        }
        k = k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2);
        h ^= k;
    }
    h ^= key.len() as u32;
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^= h >> 16;
    h as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn md5_positions_from_the_reference() {
        assert_eq!(md5_position(b"hosts.worker1.cpu"), 64833);
        assert_eq!(md5_position(b"('127.0.0.1', None):0"), 52941);
        assert_eq!(md5_position(b"('127.0.0.1', 'a'):0"), 24043);
    }

    #[test]
    fn fnv1a_32_known_values() {
        // Published FNV-1a test vectors (isthe.com): "" and "a" and "foobar".
        assert_eq!(fnv1a_32(b""), 0x811c9dc5);
        assert_eq!(fnv1a_32(b"a"), 0xe40c292c);
        assert_eq!(fnv1a_32(b"foobar"), 0xbf9cf968);
        // ASCII input: the sign-extension makes no difference.
        assert_eq!(fnv1a_32_signed_char(b"foobar"), 0xbf9cf968);
        // A byte >= 0x80 does: 0xff XORs as 0xffffffff in carbon-c-relay.
        assert_ne!(fnv1a_32_signed_char(b"\xff"), fnv1a_32(b"\xff"));
        assert_eq!(
            fnv1a_32_signed_char(b"\xff"),
            (0x811c9dc5u32 ^ 0xffff_ffff).wrapping_mul(0x01000193)
        );
    }

    #[test]
    fn fnv1a_positions_from_the_reference() {
        // carbon tests/test_hashing.py: metric positions in the fnv1a_ch ring.
        for (name, pos) in [
            ("hosts.worker1.cpu", 59573),
            ("hosts.worker1.load", 57163),
            ("hosts.worker2.cpu", 35749),
            ("hosts.worker2.network", 43584),
            ("hosts.worker3.cpu", 12600),
            ("hosts.worker3.irq", 10052),
        ] {
            assert_eq!(fold16(fnv1a_32(name.as_bytes())), pos, "{name}");
        }
    }

    #[test]
    fn fnv1a_64_known_values() {
        assert_eq!(fnv1a_64_signed_char(b""), 0xcbf29ce484222325);
        assert_eq!(fnv1a_64_signed_char(b"a"), 0xaf63dc4c8601ec8c);
        assert_eq!(fnv1a_64_signed_char(b"foobar"), 0x85944171f73967e8);
    }

    #[test]
    fn jump_bucket_stays_in_range_and_is_stable() {
        assert_eq!(jump_bucket(12345, 0), 0);
        assert_eq!(jump_bucket(12345, 1), 0);
        for key in [0u64, 1, 0xdead_beef, u64::MAX] {
            for n in 1..200 {
                let b = jump_bucket(key, n);
                assert!(b < n);
                // Monotone: growing the bucket count only ever moves a key to the new bucket.
                let next = jump_bucket(key, n + 1);
                assert!(next == b || next == n, "key {key} n {n}: {b} -> {next}");
            }
        }
    }

    #[test]
    fn murmur3_known_values() {
        // Python: mmh3.hash("foo") == -156908512; mmh3.hash("") == 0 (seed 0).
        assert_eq!(murmur3_32(b"foo"), -156_908_512);
        assert_eq!(murmur3_32(b""), 0);
        // smhasher's verification-style value for "Hello, world!" with seed 0: 0xc0363e43.
        assert_eq!(murmur3_32(b"Hello, world!") as u32, 0xc036_3e43);
    }
}
