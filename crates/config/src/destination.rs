//! `host:port[:instance]` strings: carbon's DESTINATIONS and relay-rules destinations
//! (`carbon.util.parseDestination`) and graphite-web's CARBONLINK_HOSTS (`parseHost`, the same code).

use crate::pyvalue::{py_int, py_strip};

/// One destination: where to connect, and the carbon instance name that keys the hash ring.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Destination {
    /// Host name or address, without brackets for IPv6.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// The `:instance` suffix, if present (may be empty: `host:2004:` gives `Some("")`, as carbon).
    pub instance: Option<String>,
}

impl std::fmt::Display for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)?;
        } else {
            write!(f, "{}:{}", self.host, self.port)?;
        }
        match &self.instance {
            Some(i) => write!(f, ":{i}"),
            None => Ok(()),
        }
    }
}

/// Parses one destination as carbon does: `[v6]:port[:inst]` when it starts with `[`, else
/// `host:port[:inst]` split at the first `:`; everything after the port's `:` is the instance.
///
/// Divergence: where carbon finds no `:` it reads `2004` as host `200`, port `2004` (it slices with
/// the -1 that `str.find` returns); that is refused here.
pub fn parse_destination(s: &str) -> Result<Destination, String> {
    let t = py_strip(s);
    let (host, rest) = if let Some(inner) = t.strip_prefix('[') {
        let Some(b) = inner.rfind("]:") else {
            return Err(format!("invalid destination {s:?}: expected [address]:port"));
        };
        (&inner[..b], &inner[b + 2..])
    } else {
        match t.split_once(':') {
            Some(hp) => hp,
            None => {
                return Err(format!(
                    "invalid destination {s:?}: expected host:port[:instance]"
                ));
            }
        }
    };
    let (port, instance) = match rest.split_once(':') {
        Some((p, i)) => (p, Some(i.to_string())),
        None => (rest, None),
    };
    let port = py_int(port)
        .and_then(|p| u16::try_from(p).ok())
        .ok_or_else(|| format!("invalid destination {s:?}: port {port:?} is not a number in 0-65535"))?;
    Ok(Destination {
        host: host.to_string(),
        port,
        instance,
    })
}

/// Parses a comma-separated destination list (relay-rules.conf's `destinations`).
pub fn parse_destinations(list: &str) -> Result<Vec<Destination>, String> {
    list.split(',').map(parse_destination).collect()
}

/// graphite-web's CARBONLINK_HOSTS (`graphite.util.parseHosts`, the same code as carbon's):
/// `["127.0.0.1:7002:a", ...]`, where the instance names the carbon-cache in the hash ring.
pub fn parse_carbonlink_hosts<S: AsRef<str>>(hosts: &[S]) -> Result<Vec<Destination>, String> {
    hosts.iter().map(|h| parse_destination(h.as_ref())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(host: &str, port: u16, inst: Option<&str>) -> Destination {
        Destination {
            host: host.into(),
            port,
            instance: inst.map(str::to_string),
        }
    }

    #[test]
    fn carbon_forms() {
        let ok: &[(&str, Destination)] = &[
            ("127.0.0.1:2004", d("127.0.0.1", 2004, None)),
            (" 127.0.0.1:2004:a ", d("127.0.0.1", 2004, Some("a"))),
            ("host:2004:", d("host", 2004, Some(""))),
            ("host:2004:a:b", d("host", 2004, Some("a:b"))),
            ("[::1]:2004", d("::1", 2004, None)),
            ("[::1]:2004:b", d("::1", 2004, Some("b"))),
            ("[fe80::1]:2104:c", d("fe80::1", 2104, Some("c"))),
            ("h: 2004", d("h", 2004, None)),
        ];
        for (s, want) in ok {
            assert_eq!(parse_destination(s).as_ref(), Ok(want), "{s}");
        }
        for bad in ["", "host", "2004", "[::1]", "::1:2004", "h:x", "h:70000", "h:-1"] {
            assert!(parse_destination(bad).is_err(), "{bad}");
        }
        assert_eq!(d("::1", 1, Some("a")).to_string(), "[::1]:1:a");
        assert_eq!(
            parse_carbonlink_hosts(&["127.0.0.1:7002:a", "127.0.0.1:7102:b"]),
            Ok(vec![
                d("127.0.0.1", 7002, Some("a")),
                d("127.0.0.1", 7102, Some("b"))
            ])
        );
    }
}
