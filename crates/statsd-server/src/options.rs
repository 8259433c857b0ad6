//! Where the server listens and where it flushes: etsy statsd's JSON keys (`address`, `port`,
//! `mgmt_address`, `mgmt_port`, `servers`, `graphiteHost`, `graphitePort`, `graphitePicklePort`,
//! `graphiteProtocol`, `healthStatus`) plus Carbide's own (`carbideReceivers`,
//! `carbideRecvBuffer`, `carbideGraphite`).
//!
//! Differences from etsy, on purpose: every address defaults to loopback (etsy binds all
//! interfaces), and without a `servers` list TCP listens beside UDP on the same port (etsy needs
//! a `servers` entry for TCP), and `graphiteProtocol` must be `text` or `pickle` (etsy sends
//! text for any other value).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use carbide_statsd::Config;
use serde_json::{Map, Value};

use crate::error::ServerError;
use crate::sink::GraphiteProtocol;

/// Everything [`crate::StatsdServer::start`] needs.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// The engine's config (flushInterval, percentThreshold, prefixes, …).
    pub config: Config,
    /// The config object as given, for the console's `config` command.
    pub raw: Map<String, Value>,
    /// UDP receivers' address; None: no UDP.
    pub udp: Option<SocketAddr>,
    /// TCP receiver's address; None: no TCP.
    pub tcp: Option<SocketAddr>,
    /// The management console's address; None: no console.
    pub mgmt: Option<SocketAddr>,
    /// Graphite destinations (`host:port`) every flush is written to over TCP.
    pub graphite: Vec<String>,
    /// The wire format for every graphite destination (`graphiteProtocol`).
    pub graphite_protocol: GraphiteProtocol,
    /// UDP receiver threads sharing the port through `SO_REUSEPORT`.
    pub receivers: usize,
    /// `SO_RCVBUF` asked for on each UDP socket (the kernel caps it at `net.core.rmem_max`).
    pub recv_buffer: usize,
    /// The console's `health` answer at start (`healthStatus`).
    pub health_up: bool,
}

/// Loopback, the default for every listener.
const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            config: Config::default(),
            raw: Map::new(),
            udp: Some(SocketAddr::new(LOOPBACK, 8125)),
            tcp: Some(SocketAddr::new(LOOPBACK, 8125)),
            mgmt: Some(SocketAddr::new(LOOPBACK, 8126)),
            graphite: Vec::new(),
            graphite_protocol: GraphiteProtocol::Text,
            receivers: default_receivers(),
            recv_buffer: 32 << 20,
            health_up: true,
        }
    }
}

/// One receiver per core, at most four: more only contend for the engine's lock.
fn default_receivers() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get().min(4))
        .unwrap_or(2)
}

fn bad(key: &str, reason: &str) -> ServerError {
    ServerError::Option {
        key: key.to_string(),
        reason: reason.to_string(),
    }
}

fn get_str<'a>(obj: &'a Map<String, Value>, key: &str) -> Result<Option<&'a str>, ServerError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(bad(key, "must be a string")),
    }
}

/// A port as etsy takes it: a number or a numeric string.
fn get_port(obj: &Map<String, Value>, key: &str) -> Result<Option<u16>, ServerError> {
    let v = match obj.get(key) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.trim().parse::<u64>().ok(),
        Some(_) => None,
    };
    v.and_then(|p| u16::try_from(p).ok())
        .map(Some)
        .ok_or_else(|| bad(key, "must be a port number (0-65535)"))
}

fn get_usize(obj: &Map<String, Value>, key: &str) -> Result<Option<usize>, ServerError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_u64()
            .and_then(|v| usize::try_from(v).ok())
            .map(Some)
            .ok_or_else(|| bad(key, "must be a non-negative integer")),
        Some(_) => Err(bad(key, "must be a number")),
    }
}

fn get_ip(obj: &Map<String, Value>, key: &str) -> Result<Option<IpAddr>, ServerError> {
    match get_str(obj, key)? {
        None => Ok(None),
        Some(s) => s.parse().map(Some).map_err(|_| bad(key, "must be an IP address")),
    }
}

impl ServerOptions {
    /// Reads etsy's config object (JSON). Unknown keys are kept for `config` and otherwise
    /// ignored, as etsy ignores keys no module reads.
    pub fn from_json(text: &str) -> Result<Self, ServerError> {
        let value: Value = serde_json::from_str(text).map_err(|e| ServerError::Json(e.to_string()))?;
        let Value::Object(raw) = value else {
            return Err(ServerError::Json("the config must be a JSON object".into()));
        };
        let config = Config::from_json(text)?;
        config.validate()?;
        let mut opts = ServerOptions {
            config,
            ..ServerOptions::default()
        };
        let address = get_ip(&raw, "address")?.unwrap_or(LOOPBACK);
        let port = get_port(&raw, "port")?.unwrap_or(8125);
        match raw.get("servers") {
            Some(Value::Array(servers)) => {
                opts.udp = None;
                opts.tcp = None;
                for s in servers {
                    let Value::Object(s) = s else {
                        return Err(bad("servers", "entries must be objects"));
                    };
                    let addr = SocketAddr::new(
                        get_ip(s, "address")?.unwrap_or(LOOPBACK),
                        get_port(s, "port")?.unwrap_or(8125),
                    );
                    match get_str(s, "server")?.unwrap_or("./servers/udp") {
                        m if m.ends_with("tcp") => opts.tcp = Some(addr),
                        m if m.ends_with("udp") => opts.udp = Some(addr),
                        _ => return Err(bad("servers", "server must be ./servers/udp or ./servers/tcp")),
                    }
                }
            }
            Some(_) => return Err(bad("servers", "must be a list")),
            None => {
                opts.udp = Some(SocketAddr::new(address, port));
                opts.tcp = Some(SocketAddr::new(address, port));
            }
        }
        opts.mgmt = Some(SocketAddr::new(
            get_ip(&raw, "mgmt_address")?.unwrap_or(LOOPBACK),
            get_port(&raw, "mgmt_port")?.unwrap_or(8126),
        ));
        if let Some(p) = get_str(&raw, "graphiteProtocol")? {
            opts.graphite_protocol = p.parse().map_err(|e: String| bad("graphiteProtocol", &e))?;
        }
        if let Some(host) = get_str(&raw, "graphiteHost")? {
            // graphite.js: the pickle port when pickling, else the text port.
            let port = match opts.graphite_protocol {
                GraphiteProtocol::Text => get_port(&raw, "graphitePort")?.unwrap_or(2003),
                GraphiteProtocol::Pickle => get_port(&raw, "graphitePicklePort")?.unwrap_or(2004),
            };
            opts.graphite.push(host_port(host, port));
        }
        if let Some(list) = raw.get("carbideGraphite") {
            let Value::Array(list) = list else {
                return Err(bad("carbideGraphite", "must be a list of host:port"));
            };
            for d in list {
                let Value::String(d) = d else {
                    return Err(bad("carbideGraphite", "must be a list of host:port"));
                };
                opts.graphite.push(d.clone());
            }
        }
        if let Some(n) = get_usize(&raw, "carbideReceivers")? {
            opts.receivers = n.max(1);
        }
        if let Some(n) = get_usize(&raw, "carbideRecvBuffer")? {
            opts.recv_buffer = n;
        }
        if let Some(h) = get_str(&raw, "healthStatus")? {
            opts.health_up = h != "down";
        }
        opts.raw = raw;
        Ok(opts)
    }
}

/// `host:port`, bracketing a bare IPv6 address.
pub fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etsy_keys() {
        let o = ServerOptions::from_json(
            r#"{"port": "9125", "mgmt_port": 9126, "graphiteHost": "127.0.0.1",
                "graphitePort": 2103, "flushInterval": 1000, "healthStatus": "down"}"#,
        )
        .unwrap();
        assert_eq!(o.udp, Some("127.0.0.1:9125".parse().unwrap()));
        assert_eq!(o.tcp, Some("127.0.0.1:9125".parse().unwrap()));
        assert_eq!(o.mgmt, Some("127.0.0.1:9126".parse().unwrap()));
        assert_eq!(o.graphite, vec!["127.0.0.1:2103".to_string()]);
        assert_eq!(o.config.flush_interval, 1000);
        assert!(!o.health_up);
    }

    #[test]
    fn servers_list_and_errors() {
        let o = ServerOptions::from_json(
            r#"{"servers": [{"server": "./servers/tcp", "port": 1}, {"address": "::1", "port": 2}]}"#,
        )
        .unwrap();
        assert_eq!(o.tcp, Some("127.0.0.1:1".parse().unwrap()));
        assert_eq!(o.udp, Some("[::1]:2".parse().unwrap()));
        for bad in [
            r#"{"port": 70000}"#,
            r#"{"port": true}"#,
            r#"{"address": "nowhere"}"#,
            r#"{"servers": 3}"#,
            r#"[1]"#,
            r#"{"flushInterval": 0}"#,
        ] {
            assert!(ServerOptions::from_json(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn pickle_port_and_protocol() {
        let o = ServerOptions::from_json(
            r#"{"graphiteHost": "g", "graphitePort": 2103, "graphiteProtocol": "pickle"}"#,
        )
        .unwrap();
        assert_eq!(o.graphite, vec!["g:2004".to_string()]);
        assert_eq!(o.graphite_protocol, GraphiteProtocol::Pickle);
        let o = ServerOptions::from_json(
            r#"{"graphiteHost": "g", "graphitePicklePort": 2104, "graphiteProtocol": "pickle"}"#,
        )
        .unwrap();
        assert_eq!(o.graphite, vec!["g:2104".to_string()]);
        let o = ServerOptions::from_json(r#"{"graphiteHost": "g", "graphitePicklePort": 2104}"#).unwrap();
        assert_eq!(o.graphite, vec!["g:2003".to_string()]);
        assert_eq!(o.graphite_protocol, GraphiteProtocol::Text);
        let err = ServerOptions::from_json(r#"{"graphiteProtocol": "Pickle"}"#).unwrap_err();
        assert!(err.to_string().contains("graphiteProtocol"), "{err}");
        assert!(ServerOptions::from_json(r#"{"graphiteProtocol": 2}"#).is_err());
    }

    #[test]
    fn ipv6_host_port() {
        assert_eq!(host_port("::1", 2003), "[::1]:2003");
        assert_eq!(host_port("graphite", 2003), "graphite:2003");
    }
}
