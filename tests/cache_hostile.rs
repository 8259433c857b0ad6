//! Hostile input to `carbide cache`: a 1 MB line, binary garbage, an oversized pickle frame, a
//! pickle that calls `os.system`, and `../` names are each dropped and counted, while points sent
//! on other connections at the same time still land; then 10 000 concurrent connections each send a
//! few points and every one lands.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod cache_common;

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use cache_common::{
    Kind, Ports, Server, Ts, files, finish, pickle_frame, points_of, send, wait_until, write_conf,
};

/// Concurrent connections in the last part.
const CONNS: usize = 10_000;

/// Raises this process's soft descriptor limit to `need`, or fails naming the hard limit.
fn raise_fd_limit(need: u64) {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current.is_none_or(|c| c >= need) {
        return;
    }
    assert!(
        limit.maximum.is_none_or(|h| h >= need),
        "this test needs {need} open files; the hard limit is {:?} (raise `ulimit -Hn`)",
        limit.maximum
    );
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(need),
            maximum: limit.maximum,
        },
    )
    .unwrap();
}

#[test]
fn hostile_input_is_dropped_and_counted() {
    let tmp = tempfile::tempdir().unwrap();
    // Started under a soft descriptor limit of 1 024, as distributions start services: the
    // 10 000 connections below only fit because carbide raises it to the hard limit.
    let dir = tmp.path().join("carbide");
    let ports = Ports::free();
    write_conf(&dir, ports, "");
    let s = Server::start_in_shell(Kind::Carbide, &dir, ports, &[], "ulimit -Sn 1024;");
    let (line, pickle) = (s.ports.line, s.ports.pickle);
    let t = (cache_common::now() / 60) * 60 - 120;

    // 1 MB line between two good ones on the same connection: only the long line is lost.
    let mut data = format!("hostile.before 1 {t}\n").into_bytes();
    data.extend(std::iter::repeat_n(b'x', 1 << 20));
    data.extend(format!(" 2 {t}\nhostile.after 3 {t}\n").bytes());
    send(line, &data);
    // Binary garbage (no newline for a while, NULs, high bytes) then a good line.
    let mut garbage: Vec<u8> = (0..100_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    garbage.extend(format!("\nhostile.aftergarbage 4 {t}\n").bytes());
    send(line, &garbage);
    // `../` and absolute names: refused before touching the filesystem.
    send(
        line,
        format!("../../etc/passwd 1 {t}\n..%2F..%2Fx 1 {t}\n/etc/shadow 1 {t}\na/../../b 1 {t}\n").as_bytes(),
    );
    // Oversized pickle frame: length prefix over PICKLE_RECEIVER_MAX_LENGTH drops the connection.
    let mut big = (64u32 << 20).to_be_bytes().to_vec();
    big.extend(vec![0u8; 4096]);
    send(pickle, &big);
    // GLOBAL os.system: refused by the safe unpickler (the frame is dropped and counted).
    let evil = b"\x80\x02cos\nsystem\nX\x0b\x00\x00\x00touch /tmp/pwned-by-pickle\x85R.";
    let mut frame = (evil.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(evil);
    // ...followed on the same connection by a good frame, which still lands.
    frame.extend(pickle_frame(&[("hostile.afterevil", Ts::Int(t as i32), 5.0)]));
    send(pickle, &frame);

    // Meanwhile, well-behaved clients.
    send(line, format!("hostile.good 6 {t}\n").as_bytes());
    send(
        pickle,
        &pickle_frame(&[("hostile.goodpickle", Ts::Int(t as i32), 7.0)]),
    );

    let now = cache_common::now() + 1;
    let expect = [
        ("hostile.before", 1.0),
        ("hostile.after", 3.0),
        ("hostile.aftergarbage", 4.0),
        ("hostile.afterevil", 5.0),
        ("hostile.good", 6.0),
        ("hostile.goodpickle", 7.0),
    ];
    wait_until(Duration::from_secs(30), "good points on disk", || {
        expect
            .iter()
            .all(|(m, _)| !points_of(&s.whisper(), m, now).is_empty())
    });
    for (m, v) in expect {
        let got: Vec<(i64, f64)> = points_of(&s.whisper(), m, now).into_iter().collect();
        assert_eq!(got, vec![(t, v)], "{m}");
    }
    assert!(
        !std::path::Path::new("/tmp/pwned-by-pickle").exists(),
        "the pickle ran os.system"
    );
    assert!(
        s.metric("carbide_bad_lines_total") >= 2.0,
        "long line and garbage not counted"
    );
    assert!(
        s.metric("carbide_refused_connections_total") >= 1.0,
        "oversized frame not counted"
    );
    assert!(
        s.metric("carbide_invalid_names_total") >= 3.0,
        "../ names not counted"
    );
    // Nothing escaped the data dir and no odd paths were created inside it.
    let all = files(&s.whisper());
    assert!(
        all.iter().all(|f| f.starts_with("hostile/")),
        "unexpected files: {all:?}"
    );
    assert!(!tmp.path().join("etc").exists());

    // 10 000 concurrent connections, 3 points each, all open at once before any sends (the issue's
    // figure). The server raises its own descriptor limit; this process must hold 10 000 too.
    raise_fd_limit(CONNS as u64 + 500);
    let conns: Vec<TcpStream> = (0..CONNS)
        .map(|_| TcpStream::connect(("127.0.0.1", line)).unwrap())
        .collect();
    let mut conns = conns.into_iter().enumerate().peekable();
    let mut threads = Vec::new();
    while conns.peek().is_some() {
        let chunk: Vec<(usize, TcpStream)> = conns.by_ref().take(500).collect();
        threads.push(std::thread::spawn(move || {
            for (i, c) in &chunk {
                let mut c = c;
                write!(
                    c,
                    "many.c{i} 1 {t}\nmany.c{i} 2 {}\nmany.c{i} 3 {}\n",
                    t + 1,
                    t + 2
                )
                .unwrap();
            }
            for (_, c) in chunk {
                finish(c);
            }
        }));
    }
    for th in threads {
        th.join().unwrap();
    }
    let now = cache_common::now() + 1;
    wait_until(
        Duration::from_secs(60),
        "10 000 connections' points on disk",
        || {
            s.cache_size() == 0
                && (0..CONNS).all(|i| points_of(&s.whisper(), &format!("many.c{i}"), now).len() == 3)
        },
    );
    for i in 0..CONNS {
        let got: Vec<(i64, f64)> = points_of(&s.whisper(), &format!("many.c{i}"), now)
            .into_iter()
            .collect();
        assert_eq!(got, vec![(t, 1.0), (t + 1, 2.0), (t + 2, 3.0)], "many.c{i}");
    }
}
