//! The HTTP POST receiver (go-carbon's `[receiver.http]`; carbon has none, so it is a carbide
//! extension, on with HTTP_RECEIVER_PORT). Carbon is still the oracle of what the bytes mean:
//! the same plaintext and pickle streams go to carbide by HTTP POST and to the real carbon-cache
//! (Debian graphite-carbon 1.1.7) over its TCP sockets, and the whisper trees must agree. Then
//! what only HTTP has: GET as a health check, other methods refused, a body over the limit,
//! a body with bad lines (the good ones kept, the answer says how many were bad), a hostile
//! pickle (400, nothing stored, the server lives on), and protobuf.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod cache_common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use cache_common::{
    Kind, Server, Ts, fetch_all, files, free_port, pickle_frame, points_of, send, wait_tree_stable,
    wait_until,
};

/// One HTTP/1.1 request with `Connection: close`: (status, body).
fn request(port: u16, method: &str, content_type: Option<&str>, body: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut head = format!(
        "{method} /write HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(ct) = content_type {
        head.push_str(&format!("Content-Type: {ct}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    // A refused body may be answered before it is all sent; the answer is what counts.
    let _ = s.write_all(body);
    let mut resp = Vec::new();
    let _ = s.read_to_end(&mut resp);
    let text = String::from_utf8_lossy(&resp).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

fn lines(t: i64) -> String {
    let mut s = format!(
        "http.a 1 {t}\nhttp.b 2.5 {t}\r\nhttp.tag;b=2;a=1 3 {t}\n  http.ws \t 4   {t}  \nhttp.nan nan {t}\nhttp.dup 1 {t}\nhttp.dup 2 {t}\n"
    );
    for i in 0..100 {
        s.push_str(&format!("http.many.m{} {i} {}\n", i % 10, t + i / 10));
    }
    s
}

fn pickled(t: i64) -> Vec<u8> {
    let t = i32::try_from(t).unwrap();
    pickle_frame(&[
        ("http.pickle.a", Ts::Int(t), 1.0),
        ("http.pickle.b", Ts::Float(f64::from(t) + 0.5), 2.0),
        ("http.pickle.a", Ts::Int(t + 1), 3.0),
    ])
}

#[test]
fn posted_streams_land_as_carbon_stores_them_from_its_sockets() {
    let tmp = tempfile::tempdir().unwrap();
    let http = free_port();
    let extra = format!("HTTP_RECEIVER_INTERFACE = 127.0.0.1\nHTTP_RECEIVER_PORT = {http}\n");
    let ours = Server::start(Kind::Carbide, &tmp.path().join("carbide"), &extra, &[]);
    let theirs = Server::start(Kind::Carbon, &tmp.path().join("carbon"), "", &[]);
    let t = (cache_common::now() / 60) * 60 - 300;

    // The last line without its newline: a POST body is complete, so it is a whole line.
    let text = lines(t);
    let body = text.trim_end_matches('\n');
    assert_eq!(request(http, "POST", None, body.as_bytes()), (200, String::new()));
    send(theirs.ports.line, text.as_bytes());
    let frame = pickled(t);
    assert_eq!(
        request(http, "POST", Some("application/python-pickle"), &frame[4..]),
        (200, String::new())
    );
    send(theirs.ports.pickle, &frame);

    let expected = 17;
    wait_until(
        Duration::from_secs(60),
        "carbide wrote every posted metric",
        || files(&ours.whisper()).len() >= expected && ours.cache_size() == 0,
    );
    wait_tree_stable(&theirs.whisper(), expected, Duration::from_secs(60));
    let (a, b) = (files(&ours.whisper()), files(&theirs.whisper()));
    assert_eq!(a, b, "file sets differ");
    assert_eq!(a.len(), expected, "{a:?}");
    let now = cache_common::now() + 5;
    assert_eq!(
        fetch_all(&ours.whisper(), now - 3000, now),
        fetch_all(&theirs.whisper(), now - 3000, now)
    );
}

#[test]
fn http_only_cases() {
    let tmp = tempfile::tempdir().unwrap();
    let http = free_port();
    let extra = format!("HTTP_RECEIVER_INTERFACE = 127.0.0.1\nHTTP_RECEIVER_PORT = {http}\n");
    let ours = Server::start(Kind::Carbide, &tmp.path().join("carbide"), &extra, &[]);
    let t = (cache_common::now() / 60) * 60 - 300;

    assert_eq!(request(http, "GET", None, b""), (200, "OK\n".to_string()));
    let (status, body) = request(http, "PUT", None, b"x.y 1 1");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("PUT"), "{body}");

    // Bad lines among good ones: the good ones are kept and the answer counts the bad ones.
    let mixed = format!("good.a 1 {t}\nbad.value x {t}\ngood.b 2 {t}\ngarbage\n");
    let (status, body) = request(http, "POST", Some("text/plain"), mixed.as_bytes());
    assert_eq!(status, 400);
    assert_eq!(body, "2 of 4 lines were not understood; 2 points were kept\n");

    // A hostile pickle (a GLOBAL opcode, what an exploit needs) stores nothing.
    let hostile = b"\x80\x02cos\nsystem\nq\x00X\x02\x00\x00\x00idq\x01\x85q\x02Rq\x03.";
    let (status, body) = request(http, "POST", Some("application/python-pickle"), hostile);
    assert_eq!((status, body.as_str()), (400, "Parse failed\n"));
    let (status, _) = request(http, "POST", Some("application/protobuf"), b"\xff\xff\xff");
    assert_eq!(status, 400);

    // Protobuf, carbon's Payload.
    let pb = carbide_protocol::protobuf::encode_payload(&[("pb.m", &[(t as u32, 7.0), (t as u32 + 1, 8.0)])]);
    assert_eq!(
        request(http, "POST", Some("application/protobuf"), &pb),
        (200, String::new())
    );

    // A body over go-carbon's 64 MiB limit is refused (413) before it is read whole.
    let big = vec![b'a'; (64 << 20) + 1];
    assert_eq!(request(http, "POST", None, &big).0, 413);

    wait_until(Duration::from_secs(60), "carbide wrote the posted points", || {
        files(&ours.whisper()).len() >= 3 && ours.cache_size() == 0
    });
    let mut got = files(&ours.whisper());
    got.sort();
    assert_eq!(got, ["good/a.wsp", "good/b.wsp", "pb/m.wsp"]);
    let now = cache_common::now() + 5;
    assert_eq!(
        points_of(&ours.whisper(), "pb.m", now)
            .into_values()
            .collect::<Vec<_>>(),
        [7.0, 8.0]
    );
    assert_eq!(ours.metric("carbide_bad_lines_total"), 4.0);
    // Still serving.
    assert_eq!(request(http, "GET", None, b"").0, 200);
}
