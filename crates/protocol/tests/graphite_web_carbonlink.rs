//! Carbonlink end to end with graphite-web 1.1.8's own client (`graphite.carbonlink
//! .CarbonLinkPool`, /usr/bin/python3): its requests decode with our codec, and our framed
//! replies come back through its `recv_response` and safe unpickler as the values it expects.

mod common;

use carbide_protocol::carbonlink::{Reply, Request, decode_request};
use carbide_protocol::framing::{CARBONLINK_MAX_FRAME, decode_frame, encode_frame};
use carbide_protocol::pickle::{Limits, Value};
use common::{hex, run_python, unhex};

/// A CarbonLinkPool whose only connection is a fake socket: it records what graphite-web
/// sends and answers with the frames given on stdin (one hex line per request).
const CLIENT: &str = r#"
import os, warnings
warnings.simplefilter('ignore')
os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'graphite.settings')
from graphite.carbonlink import CarbonLinkPool
answers = [bytes.fromhex(l.strip()) for l in sys.stdin if l.strip()]
class Conn:
    def __init__(self): self.buf = b''
    def sendall(self, data):
        print('REQ', data.hex())
        if not answers: raise IOError('no answer scripted')
        self.buf = answers.pop(0)
    def recv(self, n):
        chunk, self.buf = self.buf[:n], self.buf[n:]
        return chunk
pool = CarbonLinkPool([('127.0.0.1', 7002, None)], 1.0)
host = pool.hosts[0]
def call(f):
    pool.connections[host] = {Conn()}
    try:
        print('RES', canon(f()))
    except Exception as e:
        print('RES', 'ERR:' + type(e).__name__ + ':' + str(e))
call(lambda: pool.query('a.b'))
call(lambda: pool.get_metadata('a.b', 'aggregationMethod'))
call(lambda: pool.set_metadata('a.b', 'aggregationMethod', 'max'))
call(lambda: pool.get_metadata('a.b', 'xff'))
"#;

fn reply_for(req: &Request) -> Reply {
    match req {
        Request::CacheQuery { .. } => Reply::Datapoints(vec![(60.0, 1.5), (120.0, -2.0)]),
        Request::GetMetadata { key, .. } if key == "aggregationMethod" => {
            Reply::Value(Value::from("average"))
        }
        Request::GetMetadata { key, .. } => Reply::unsupported_metadata_key(key),
        Request::SetMetadata { value, .. } => Reply::Changed {
            old_value: Value::from("average"),
            new_value: value.clone(),
        },
        other => Reply::invalid_type(&Value::from(format!("{other:?}"))),
    }
}

#[test]
fn graphite_web_client_round_trip() {
    // Phase 1: capture the requests exactly as graphite-web frames them.
    let first = run_python(CLIENT, "");
    let requests: Vec<Request> = first
        .lines()
        .filter_map(|l| l.strip_prefix("REQ "))
        .map(|h| {
            let data = unhex(h);
            let frame = decode_frame(&data, CARBONLINK_MAX_FRAME)
                .expect("frame")
                .expect("whole");
            assert_eq!(frame.consumed, data.len());
            // graphite-web pickles with protocol -1, i.e. 5 under Python 3.8+.
            assert_eq!(frame.payload.get(..2), Some(&[0x80, 5][..]));
            decode_request(frame.payload, &Limits::default()).expect("request")
        })
        .collect();
    assert_eq!(
        requests,
        vec![
            Request::CacheQuery { metric: "a.b".into() },
            Request::GetMetadata {
                metric: "a.b".into(),
                key: "aggregationMethod".into()
            },
            Request::SetMetadata {
                metric: "a.b".into(),
                key: "aggregationMethod".into(),
                value: "max".into()
            },
            Request::GetMetadata {
                metric: "a.b".into(),
                key: "xff".into()
            },
        ]
    );
    // Phase 2: answer each with our framed reply and read what graphite-web makes of it.
    let mut input = String::new();
    for req in &requests {
        let mut framed = Vec::new();
        encode_frame(&reply_for(req).encode(), &mut framed).expect("frame fits");
        input.push_str(&hex(&framed));
        input.push('\n');
    }
    let second = run_python(CLIENT, &input);
    let results: Vec<&str> = second.lines().filter_map(|l| l.strip_prefix("RES ")).collect();
    let s = |t: &str| format!("s{}", hex(t.as_bytes()));
    let f = |x: f64| format!("f{}", hex(&x.to_be_bytes()));
    assert_eq!(
        results,
        vec![
            format!("[({},{}),({},{})]", f(60.0), f(1.5), f(120.0), f(-2.0)),
            s("average"),
            format!(
                "{{{}:{},{}:{}}}",
                s("old_value"),
                s("average"),
                s("new_value"),
                s("max")
            ),
            "ERR:CarbonLinkRequestError:ValueError: Unsupported metadata key \"xff\"".to_string(),
        ]
    );
}
