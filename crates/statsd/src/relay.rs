//! StatsRelay (jjneely/statsrelay 0.0.10): route each StatsD line to one backend by a jump hash
//! of its key, and batch lines per backend into packets.
//!
//! The key is the bytes before the first `:` (with `-metrics-prefix`, `prefix.` in front). Its
//! FNV-1a-64 hash goes through Lamping–Veach jump hash over the backends in command-line order,
//! the same bucket carbon-c-relay's `jump_fnv1a_ch` picks. Lines without `:` are dropped.
//! Leading `\n`, `\r` and NUL bytes are skipped; a line keeps a trailing `\r`.

use crate::error::RelayError;

/// FNV-1a, 64-bit.
pub fn fnv1a64(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in data {
        h = (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Jump consistent hash: a bucket in `0..buckets` (`buckets` > 0), computed with the same
/// float steps as StatsRelay's Go.
pub fn jump(mut key: u64, buckets: usize) -> usize {
    let n = buckets as i64;
    let mut b: i64 = -1;
    let mut j: i64 = 0;
    while j < n {
        b = j;
        key = key.wrapping_mul(2_862_933_555_777_941_757).wrapping_add(1);
        j = ((b + 1) as f64 * ((1u64 << 31) as f64 / ((key >> 33) + 1) as f64)) as i64;
    }
    usize::try_from(b).unwrap_or(0)
}

/// One packet ready for a backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    /// Index into the backends given to [`Relay::new`].
    pub backend: usize,
    /// Newline-terminated lines.
    pub data: Vec<u8>,
}

/// The routing half of StatsRelay.
#[derive(Debug, Clone)]
pub struct Relay {
    backends: usize,
    packet_len: usize,
    stats_key: String,
    metrics_prefix: Option<String>,
}

impl Relay {
    /// `backends` in ring order; `packet_len` is `-packetlen` (1400); `prefix` is `-prefix`
    /// (`statsrelay`) for its own `statsProcessed` counter; `metrics_prefix` is `-metrics-prefix`.
    pub fn new(
        backends: usize,
        packet_len: usize,
        prefix: &str,
        metrics_prefix: Option<&str>,
    ) -> Result<Self, RelayError> {
        if backends == 0 {
            return Err(RelayError::NoBackends);
        }
        if packet_len == 0 {
            return Err(RelayError::PacketLen);
        }
        Ok(Relay {
            backends,
            packet_len,
            stats_key: format!("{prefix}.statsProcessed"),
            metrics_prefix: metrics_prefix.filter(|p| !p.is_empty()).map(str::to_string),
        })
    }

    /// The backend of a hash key.
    pub fn backend_for(&self, key: &[u8]) -> usize {
        jump(fnv1a64(key), self.backends)
    }

    /// Routes one received buffer: returns packets in the order StatsRelay sends them (a
    /// backend's packet goes out when the next line would push it past `packet_len`, the rest
    /// at the end in backend order), with its `<prefix>.statsProcessed:N|c` line added.
    /// StatsRelay's check ignores the newline, so a packet may hold `packet_len + 1` bytes; it
    /// also sends an empty datagram before an oversized line, which we do not.
    pub fn route(&self, buf: &[u8]) -> Vec<Packet> {
        let mut pending: Vec<Vec<u8>> = vec![Vec::new(); self.backends];
        let mut out = Vec::new();
        let mut handled: u64 = 0;
        let mut offset = 0;
        while offset < buf.len() {
            while offset < buf.len() && matches!(buf[offset], b'\n' | b'\r' | 0) {
                offset += 1;
            }
            let rest = &buf[offset..];
            let size = rest.iter().position(|b| *b == b'\n').unwrap_or(rest.len());
            if size == 0 {
                break;
            }
            let line = &rest[..size];
            if let Some(colon) = line.iter().position(|b| *b == b':') {
                let mut data_owned;
                let (key, data): (&[u8], &[u8]) = match &self.metrics_prefix {
                    Some(p) => {
                        data_owned = Vec::with_capacity(p.len() + 1 + line.len());
                        data_owned.extend_from_slice(p.as_bytes());
                        data_owned.push(b'.');
                        data_owned.extend_from_slice(line);
                        (&data_owned[..p.len() + 1 + colon], &data_owned[..])
                    }
                    None => (&line[..colon], line),
                };
                let target = self.backend_for(key);
                self.append(&mut pending, &mut out, target, data, size);
                handled += 1;
            }
            offset += size + 1;
        }
        if handled == 0 {
            return Vec::new();
        }
        let stats = format!("{}:{handled}|c", self.stats_key);
        let target = self.backend_for(self.stats_key.as_bytes());
        self.append(&mut pending, &mut out, target, stats.as_bytes(), stats.len() + 1);
        for (backend, data) in pending.into_iter().enumerate() {
            if !data.is_empty() {
                out.push(Packet { backend, data });
            }
        }
        out
    }

    /// Adds a line to its backend's packet, sending the packet first when `size` does not fit.
    fn append(
        &self,
        pending: &mut [Vec<u8>],
        out: &mut Vec<Packet>,
        target: usize,
        data: &[u8],
        size: usize,
    ) {
        let Some(p) = pending.get_mut(target) else {
            return;
        };
        if p.len() + size > self.packet_len && !p.is_empty() {
            out.push(Packet {
                backend: target,
                data: std::mem::take(p),
            });
        }
        p.extend_from_slice(data);
        p.push(b'\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NODES: [&str; 45] = [
        "graphite010-g5",
        "graphite011-g5",
        "graphite012-g5",
        "graphite013-g5",
        "graphite014-g5",
        "graphite015-g5",
        "graphite016-g5",
        "graphite017-g5",
        "graphite018-g5",
        "graphite-data019-g5",
        "graphite-data020-g5",
        "graphite-data021-g5",
        "graphite-data022-g5",
        "graphite-data023-g5",
        "graphite-data024-g5",
        "graphite-data025-g5",
        "graphite-data026-g5",
        "graphite-data027-g5",
        "graphite-data028-g5",
        "graphite-data029-g5",
        "graphite-data030-g5",
        "graphite-data031-g5",
        "graphite-data032-g5",
        "graphite-data033-g5",
        "graphite-data034-g5",
        "graphite-data035-g5",
        "graphite-data036-g5",
        "graphite-data037-g5",
        "graphite-data038-g5",
        "graphite-data039-g5",
        "graphite-data040-g5",
        "graphite-data041-g5",
        "graphite-data042-g5",
        "graphite-data043-g5",
        "graphite-data044-g5",
        "graphite-data045-g5",
        "graphite-data046-g5",
        "graphite-data047-g5",
        "graphite-data048-g5",
        "graphite-data049-g5",
        "graphite-data050-g5",
        "graphite-data051-g5",
        "graphite-data052-g5",
        "graphite-data053-g5",
        "graphite-data054-g5",
    ];

    #[test]
    fn fnv_vectors_from_statsrelay() {
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
        assert_eq!(fnv1a64(b"changed"), 0xdf38_879a_f614_707b);
        assert_eq!(
            fnv1a64(b"5min.prod.dc06.graphite-web006-g6.kernel.net.netfilter.nf_conntrack_max"),
            0xdb7b_58ef_171e_ee9f
        );
    }

    #[test]
    fn jump_vectors_from_statsrelay() {
        let r = Relay::new(NODES.len(), 1400, "statsrelay", None).unwrap();
        for (key, node) in [
            ("foobar", "graphite-data043-g5"),
            ("suebob.foo.honey.i.shrunk.the.kids", "graphite-data048-g5"),
            (
                "5min.prod.dc06.graphite-web006-g6.kernel.net.netfilter.nf_conntrack_max",
                "graphite014-g5",
            ),
        ] {
            assert_eq!(NODES[r.backend_for(key.as_bytes())], node, "{key}");
        }
        for n in NODES {
            assert!(jump(fnv1a64(n.as_bytes()), NODES.len()) < NODES.len());
        }
        assert_eq!(jump(12345, 1), 0);
    }

    #[test]
    fn routing_and_batching() {
        let r = Relay::new(1, 20, "sr", None).unwrap();
        let input = b"\r\n\0foobar:1|c\nnocolon\nfoobar:2|c|@0.5\r\nfoobar:3|c";
        let got: Vec<Vec<u8>> = r.route(input).into_iter().map(|p| p.data).collect();
        let want: Vec<Vec<u8>> = vec![
            b"foobar:1|c\n".to_vec(),
            // 16 bytes fit in 20, and the size check does not count the newline.
            b"foobar:2|c|@0.5\r\n".to_vec(),
            b"foobar:3|c\n".to_vec(),
            b"sr.statsProcessed:3|c\n".to_vec(),
        ];
        assert_eq!(got, want);
        // Two backends: every line lands on the backend its key hashes to.
        let r = Relay::new(2, 1400, "sr", None).unwrap();
        let packets = r.route(b"a:1|c\nb:1|c\nc:1|c\nd:1|c");
        for p in &packets {
            for line in p.data.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                let key = line.split(|b| *b == b':').next().unwrap_or_default();
                assert_eq!(r.backend_for(key), p.backend);
            }
        }
        assert_eq!(packets.iter().map(|p| p.data.len()).sum::<usize>(), 24 + 22);
        assert!(r.route(b"\n\nnocolon\n").is_empty());
        assert_eq!(Relay::new(0, 1400, "x", None).err(), Some(RelayError::NoBackends));
    }

    #[test]
    fn metrics_prefix_changes_key_and_line() {
        let r = Relay::new(45, 1400, "statsrelay", Some("pre")).unwrap();
        let packets = r.route(b"foobar:1|c");
        let b = r.backend_for(b"pre.foobar");
        assert!(
            packets
                .iter()
                .any(|p| p.backend == b && p.data.starts_with(b"pre.foobar:1|c\n"))
        );
    }
}
