//! Differential tests of tagged series against graphite-web 1.1.8 with its default local TagDB:
//! seriesByTag, groupByTags and aliasByTags rendered from `_tagged/` whisper files, and the /tags API
//! (tagSeries, tagMultiSeries, delSeries, findSeries, the tag list, a tag's values, autocomplete).
//!
//! Both servers see the same whisper tree. Some tagged files have carbon's readable names (carbide
//! learns them by scanning), some hashed names (carbide learns them, as graphite-web does, from
//! tagMultiSeries). graphite-web is told every series in the order carbide numbers them (scanned
//! ones sorted, then the rest in call order), so the tag and value ids in /tags answers agree too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

mod common;

use std::path::Path;

use carbide_core::Retention;
use common::*;
use serde_json::Value;

/// Tagged series stored under carbon's readable file names (TAG_HASH_FILENAMES = False).
const READABLE: &[&str] = &[
    "cpu.system;dc=east;host=web1",
    "cpu.user;dc=east;host=web1",
    "cpu.user;dc=east;host=web2",
    "cpu.user;dc=west;host=web3",
];

/// Tagged series stored under hashed file names (carbon's default); the last has a `/` in a value.
const HASHED: &[&str] = &[
    "cpu.user;host=db1",
    "mem;dc=west;env=prod;host=web3",
    "disk.free;dc=west;host=db1;mount=/var",
];

fn write_tagged(root: &Path) {
    let retentions = Retention::parse_list("60:720,300:600").unwrap();
    for (n, name) in READABLE.iter().chain(HASHED).enumerate() {
        let hash_only = HASHED.contains(name);
        let rel = carbide_protocol::tags::filesystem_path(name, hash_only);
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let pts: Vec<(i64, f64)> = (1..=150)
            .filter(|i| (i + n as i64) % 5 != 0)
            .map(|i| (NOW - i * 60, ((i * (n as i64 + 3)) % 23) as f64 - 2.5))
            .collect();
        carbide_whisper::file::create(&path, &retentions, &Default::default()).unwrap();
        carbide_whisper::file::update_many(&path, &pts, NOW, false).unwrap();
    }
}

/// Like `compare`, but also compares error bodies (graphite-web's `{"error": …}`) and 405s.
fn compare_any(s: &Servers, method: &str, path: &str, form: Option<&str>) -> Result<(), String> {
    let (gs, gb) = http(s.gw, method, path, form).ok_or("graphite-web did not answer")?;
    let (os, ob) = http(s.ours, method, path, form).ok_or("carbide did not answer")?;
    if gs != os {
        return Err(format!(
            "{method} {path} {form:?}: status graphite-web {gs} vs ours {os}\n gw: {gb:.400}\n ours: {ob:.400}"
        ));
    }
    if gb.trim().is_empty() && ob.trim().is_empty() {
        return Ok(());
    }
    let (g, o) = (parse(&gb), parse(&ob));
    if !close(&g, &o) {
        return Err(format!("{method} {path} {form:?}:\n gw:   {g}\n ours: {o}"));
    }
    Ok(())
}

fn form_paths(paths: &[&str]) -> String {
    paths
        .iter()
        .map(|p| format!("path={}", enc(p)))
        .collect::<Vec<_>>()
        .join("&")
}

#[test]
fn tagged_series_and_tags_api_match_graphite_web() {
    let s = servers_with(write_tagged);
    let mut failures = Vec::new();

    // Both learn the series: graphite-web only through the API; carbide already knows the
    // readable files and learns the hashed ones (and one given unsorted, one without a file).
    let mut all: Vec<&str> = READABLE.to_vec();
    all.extend(HASHED);
    all.push("net.rx;host=web9;dc=east");
    let form = form_paths(&all);
    let (gs, gb) = http(s.gw, "POST", "/tags/tagMultiSeries", Some(&form)).unwrap();
    let (os, ob) = http(s.ours, "POST", "/tags/tagMultiSeries", Some(&form)).unwrap();
    assert_eq!((gs, parse(&gb)), (os, parse(&ob)), "tagMultiSeries");

    let targets = [
        "seriesByTag('name=cpu.user')",
        "seriesByTag('name=cpu.user','dc=east')",
        "seriesByTag('name=~cpu','dc!=east')",
        "seriesByTag('host=~web[12]')",
        "seriesByTag('name=cpu.user','dc=')",
        "seriesByTag('dc!=','name!=~cpu')",
        "seriesByTag('host=~^db|3')",
        "seriesByTag('host!=~^web','name=~.')",
        "seriesByTag('mount=/var')",
        "seriesByTag('name=net.rx')",
        "seriesByTag('name=nothing')",
        "seriesByTag(\"name=mem\")|alias(\"m\")",
        "sumSeries(seriesByTag('name=cpu.user'))",
        "seriesByTag('name=cpu.user','dc!=')|groupByTags('sumSeries','dc')",
        "groupByTags(seriesByTag('dc=east'),'average','name')",
        "groupByTags(seriesByTag('dc=~.+'),'max','dc','host')",
        "groupByTags(seriesByTag('name=cpu.user','dc=~.'),'median','host','dc')",
        "seriesByTag('name=cpu.user')|aliasByTags('host','dc')",
        "aliasByTags(seriesByTag('name=~cpu'),1,'host')",
        "aliasByTags(seriesByTag('dc=west'),'name',-1)",
        "aliasByNode(seriesByTag('dc=west'),'host',0)",
        "groupByNodes(seriesByTag('name=cpu.user','dc=~.'),'sum','dc')",
        // a tagged name as a plain target: its _tagged/ file, readable and hashed
        "cpu.user;dc=east;host=web2",
        "scale(mem;dc=west;env=prod;host=web3,2)",
        "cpu.user;host=web2;dc=east",
        "sumSeries(cpu.user;dc=east;host=web1,cpu.user;host=db1)",
    ];
    failures.extend(render_differences(
        &s,
        &targets,
        &["from=-1h", "from=-3h&until=-1h", "from=-2d"],
    ));
    // Errors: every spec matches the empty value; an invalid spec.
    for t in [
        "seriesByTag('dc=')",
        "seriesByTag('a')",
        "groupByTags(seriesByTag('name=mem'),'sum')",
    ] {
        let path = format!("/render?target={}&from=-1h&now={NOW}&format=json", enc(t));
        let (gs, gb) = http(s.gw, "GET", &path, None).unwrap();
        let (os, ob) = http(s.ours, "GET", &path, None).unwrap();
        // graphite-web 1.1.8 answers these with a 500 (an uncaught ValueError / InputParameterError
        // turned into a server error); carbide answers 400, naming the problem.
        if !(gs >= 400 && os == 400) {
            failures.push(format!("{t}: graphite-web {gs} {gb:.200}, ours {os} {ob:.200}"));
        }
    }

    let gets = [
        "/tags",
        "/tags/",
        "/tags?filter=d",
        "/tags?filter=^h|n",
        "/tags?filter=o",
        "/tags?limit=2",
        "/tags?limit=0",
        "/tags?limit=-1",
        "/tags?limit=x",
        "/tags/host",
        "/tags/dc?filter=e",
        "/tags/host?limit=1",
        "/tags/name?filter=cpu",
        "/tags/mount",
        "/tags/nope",
        "/tags/findSeries?expr=name=cpu.user&expr=dc=east",
        "/tags/findSeries?expr[]=host=~web&expr[]=dc!=west",
        "/tags/findSeries?expr=host=~^db|3",
        "/tags/findSeries?expr=dc=",
        "/tags/findSeries?expr=a",
        "/tags/findSeries",
        "/tags/autoComplete/tags",
        "/tags/autoComplete/tags?tagPrefix=d",
        "/tags/autoComplete/tags?expr=name=cpu.user",
        "/tags/autoComplete/tags?expr=name=cpu.user&tagPrefix=h",
        "/tags/autoComplete/tags?expr=dc=west&expr=host!=web3",
        "/tags/autoComplete/tags?limit=2",
        "/tags/autoComplete/tags?limit=0",
        "/tags/autoComplete/tags?limit=-1",
        "/tags/autoComplete/tags?expr=name=~.&limit=-2",
        "/tags/autoComplete/tags?expr=dc=",
        "/tags/autoComplete/values?tag=host",
        "/tags/autoComplete/values?tag=host&valuePrefix=web",
        "/tags/autoComplete/values?tag=host&expr=dc=east",
        "/tags/autoComplete/values?tag=name&expr=host=~web&valuePrefix=cpu&limit=1",
        "/tags/autoComplete/values?tag=dc&limit=0",
        "/tags/autoComplete/values?tag=dc&expr=name=~.&limit=0",
        "/tags/autoComplete/values?tag=nope",
        "/tags/autoComplete/values",
        "/tags/tagSeries",
    ];
    for path in gets {
        if let Err(e) = compare_any(&s, "GET", path, None) {
            failures.push(e);
        }
    }
    // Grafana's POSTs, then changes: a new series, a re-tag, deletions; answers after them.
    let posts: &[(&str, &str)] = &[
        ("/tags/autoComplete/tags", "expr=name%3Dcpu.user&tagPrefix="),
        ("/tags/findSeries", "expr=dc%3Dwest"),
        ("/tags/tagSeries", "path=app.hits%3Bregion%3Deu%3Benv%3Dprod"),
        ("/tags/tagSeries", "path=cpu.user%3Bhost%3Dweb2%3Bdc%3Deast"),
        ("/tags/tagSeries", "path=bad%3Btag"),
        ("/tags/tagSeries", ""),
        (
            "/tags/tagMultiSeries",
            "path%5B%5D=a%3Bx%3D1&path%5B%5D=b%3Bx%3D2",
        ),
        ("/tags/tagMultiSeries", ""),
        (
            "/tags/delSeries",
            "path=cpu.user%3Bdc%3Deast%3Bhost%3Dweb1&path=never%3Bseen%3Dyes",
        ),
        ("/tags/delSeries", "path%5B%5D=a%3Bx%3D1"),
        ("/tags/delSeries", ""),
    ];
    for (path, form) in posts {
        if let Err(e) = compare_any(&s, "POST", path, Some(form)) {
            failures.push(e);
        }
    }
    for path in [
        "/tags",
        "/tags/host",
        "/tags/x",
        "/tags/env",
        "/tags/findSeries?expr=name=cpu.user",
        "/tags/autoComplete/tags",
        "/tags/autoComplete/values?tag=env",
    ] {
        if let Err(e) = compare_any(&s, "GET", path, None) {
            failures.push(format!("after changes: {e}"));
        }
    }
    failures.extend(render_differences(
        &s,
        &["seriesByTag('name=cpu.user')", "seriesByTag('name=app.hits')"],
        &["from=-1h"],
    ));
    assert_no_differences(&failures);
}

/// GET `path` and return the raw body bytes (pickle and msgpack are binary).
fn get_bytes(port: u16, path: &str) -> (u16, Vec<u8>) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(60)))
        .unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).unwrap();
    let split = resp.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&resp[..split]).into_owned();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, resp[split + 4..].to_vec())
}

/// Decodes a pickle (Python's pickle) or msgpack (a spec reader) body with Python, as JSON
/// with infinities and NaN spelled as strings.
fn py_decode(kind: &str, body: &[u8], dir: &Path) -> Value {
    let file = dir.join(format!("body-{kind}"));
    std::fs::write(&file, body).unwrap();
    let script = r#"
import sys, json, math, pickle, struct
# graphite-web's bundled umsgpack cannot unpack maps on Python 3.11 (collections.Hashable is
# gone), and python3-msgpack is not installed: a small reader of the MessagePack spec.
def unpack(b, i):
    c = b[i]; i += 1
    if c <= 0x7f: return c, i
    if c >= 0xe0: return c - 256, i
    if 0x80 <= c <= 0x8f: return unpack_map(b, i, c & 15)
    if 0x90 <= c <= 0x9f: return unpack_list(b, i, c & 15)
    if 0xa0 <= c <= 0xbf: n = c & 31; return b[i:i+n].decode(), i + n
    if c == 0xc0: return None, i
    if c == 0xc2: return False, i
    if c == 0xc3: return True, i
    fmt = {0xca: '>f', 0xcb: '>d', 0xcc: '>B', 0xcd: '>H', 0xce: '>I', 0xcf: '>Q',
           0xd0: '>b', 0xd1: '>h', 0xd2: '>i', 0xd3: '>q'}
    if c in fmt:
        n = struct.calcsize(fmt[c]); return struct.unpack(fmt[c], b[i:i+n])[0], i + n
    if c in (0xd9, 0xda, 0xdb, 0xc4, 0xc5, 0xc6):
        w = {0xd9: 1, 0xda: 2, 0xdb: 4, 0xc4: 1, 0xc5: 2, 0xc6: 4}[c]
        n = int.from_bytes(b[i:i+w], 'big'); i += w
        raw = b[i:i+n]
        return (raw.decode() if c >= 0xd9 else list(raw)), i + n
    if c in (0xdc, 0xdd): w = 2 if c == 0xdc else 4; return unpack_list(b, i + w, int.from_bytes(b[i:i+w], 'big'))
    if c in (0xde, 0xdf): w = 2 if c == 0xde else 4; return unpack_map(b, i + w, int.from_bytes(b[i:i+w], 'big'))
    raise ValueError('msgpack type 0x%x' % c)
def unpack_list(b, i, n):
    out = []
    for _ in range(n):
        v, i = unpack(b, i); out.append(v)
    return out, i
def unpack_map(b, i, n):
    out = {}
    for _ in range(n):
        k, i = unpack(b, i); v, i = unpack(b, i); out[k] = v
    return out, i
data = open(sys.argv[2], 'rb').read()
if sys.argv[1] == 'pickle':
    v = pickle.loads(data)
else:
    v, end = unpack(data, 0)
    assert end == len(data), 'trailing bytes'

def fix(x):
    if isinstance(x, float) and (math.isinf(x) or math.isnan(x)): return repr(x)
    if isinstance(x, (list, tuple)): return [fix(i) for i in x]
    if type(x).__name__ == 'IntervalSet': return {'IntervalSet': fix(x.intervals), 'size': x.size}
    if type(x).__name__ == 'Interval': return {'Interval': fix(x.tuple), 'size': x.size}
    if isinstance(x, dict): return {str(k): fix(i) for k, i in x.items()}
    return x
print(json.dumps(fix(v)))
"#;
    let out = std::process::Command::new("/usr/bin/python3")
        .args(["-c", script, kind, &file.display().to_string()])
        .env("PYTHONPATH", "/usr/lib/python3/dist-packages")
        .output()
        .expect("/usr/bin/python3 is missing; run scripts/install-test-deps.sh");
    assert!(
        out.status.success(),
        "python could not decode the {kind} body: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    parse(&String::from_utf8_lossy(&out.stdout))
}

#[test]
fn render_and_find_pickle_and_msgpack_match_graphite_web() {
    let s = servers_with(write_tagged);
    let all: Vec<&str> = READABLE.iter().chain(HASHED).copied().collect();
    let form = form_paths(&all);
    assert_eq!(
        http(s.gw, "POST", "/tags/tagMultiSeries", Some(&form)).unwrap().0,
        200
    );
    assert_eq!(
        http(s.ours, "POST", "/tags/tagMultiSeries", Some(&form))
            .unwrap()
            .0,
        200
    );
    let mut failures = Vec::new();
    let targets = [
        "servers.*.cpu.user",
        "other.single",
        "sumSeries(servers.*.cpu.*)",
        "seriesByTag('name=cpu.user')",
        "constantLine(1.5)",
        "nonexistent.*",
    ];
    let mut compared = 0;
    for kind in ["pickle", "msgpack"] {
        let mut paths: Vec<String> = targets
            .iter()
            .map(|t| format!("/render?target={}&from=-2h&now={NOW}&format={kind}", enc(t)))
            .collect();
        paths.push(format!("/render?target=servers.web1.requests&target=other.single&from=-3h&until=-1h&now={NOW}&format={kind}"));
        // pickle carries graphite.intervals objects, msgpack plain [start, end] pairs.
        paths.push(format!("/metrics/find?query=servers.*.cpu.*&format={kind}"));
        paths.push(format!("/metrics/find?query=servers.*&format={kind}"));
        for path in paths {
            let (gs, gb) = get_bytes(s.gw, &path);
            let (os, ob) = get_bytes(s.ours, &path);
            if gs != 200 || os != 200 {
                failures.push(format!("{path}: status graphite-web {gs}, ours {os}"));
                continue;
            }
            let mut g = py_decode(kind, &gb, s.dir.path());
            let mut o = py_decode(kind, &ob, s.dir.path());
            if path.contains("/metrics/find") {
                // graphite-web shuffles nodes before its stable sort by the last segment.
                for v in [&mut g, &mut o] {
                    if let Value::Array(items) = v {
                        items.sort_by_key(|x| x["path"].to_string());
                    }
                }
            }
            // find intervals end at the file's mtime and start at time.time() - retention.
            let loose = path.contains("/metrics/find");
            let same = if loose {
                intervals_close(&g, &o)
            } else {
                close(&g, &o)
            };
            if !same {
                failures.push(format!("{path}:\n gw:   {g}\n ours: {o}"));
            }
            compared += 1;
        }
    }
    assert_eq!(compared, 18);
    assert_no_differences(&failures);
}

/// POST a JSON body: (status, body).
fn post_json(port: u16, path: &str, body: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(60)))
        .unwrap();
    write!(
        s,
        "POST {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).unwrap();
    let text = String::from_utf8_lossy(&resp).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    (
        head.split_whitespace().nth(1).unwrap().parse().unwrap(),
        body.to_string(),
    )
}

#[test]
fn events_match_graphite_web() {
    let s = servers();
    let mut failures = Vec::new();
    let t = NOW - 3600;
    let posts = [
        format!(r#"{{"what": "deploy", "tags": ["web", "prod"], "data": "v1.2", "when": {t}}}"#),
        format!(
            r#"{{"what": "restart", "tags": "db prod db", "when": {}}}"#,
            t + 600
        ),
        format!(
            r#"{{"what": "alert", "tags": ["web"], "data": "cpu high", "when": {}.75}}"#,
            t + 1200
        ),
        format!(r#"{{"what": "note", "when": {}}}"#, t - 86400),
        r#"{"what": "bad", "tags": 5}"#.to_string(),
    ];
    for body in &posts {
        let (gs, gb) = post_json(s.gw, "/events/", body);
        let (os, ob) = post_json(s.ours, "/events/", body);
        if gs != os {
            failures.push(format!(
                "POST {body}: graphite-web {gs} {gb:.200}, ours {os} {ob:.200}"
            ));
        }
    }
    let from = NOW - 7200;
    let gets = [
        "/events/get_data".to_string(),
        format!("/events/get_data?from={from}"),
        format!("/events/get_data?from={from}&until={}", t + 900),
        format!("/events/get_data?from={from}&tags=web"),
        "/events/get_data?tags=prod+web".to_string(),
        "/events/get_data?tags=prod+nosuchtag".to_string(),
        "/events/get_data?tags=nosuchtag".to_string(),
        "/events/get_data?tags=web+db&set=union".to_string(),
        "/events/get_data?tags=prod+nosuchtag&set=intersection".to_string(),
        "/events/get_data?tags=prod+web&set=intersection".to_string(),
        format!("/events/get_data?from={}&until={}", t + 1200, t + 1200),
    ];
    for path in &gets {
        if let Err(e) = compare_any(&s, "GET", path, None) {
            failures.push(e);
        }
    }
    let (_, body) = http(s.ours, "GET", "/events/get_data?jsonp=cb", None).unwrap();
    assert!(body.starts_with("cb([{"), "{body}");
    // One event at the same second as another, to count 2 there.
    let (gs, _) = post_json(
        s.gw,
        "/events/",
        &format!(r#"{{"what": "again", "tags": "web", "when": {t}}}"#),
    );
    let (os, _) = post_json(
        s.ours,
        "/events/",
        &format!(r#"{{"what": "again", "tags": "web", "when": {t}}}"#),
    );
    assert_eq!((gs, os), (200, 200));
    // The events() render function counts them per second; `/events/<id>` shows one event.
    let range = format!("from={}&until={}&now={NOW}", t - 30, t + 1230);
    for target in [
        r#"events("*")"#,
        r#"events("web")"#,
        r#"events("prod","web")"#,
        r#"events("nosuchtag")"#,
        r#"events("web","nosuchtag")"#,
        r#"summarize(events("*"),"10min","sum")"#,
    ] {
        let path = format!("/render?target={}&{range}&format=json", enc(target));
        if let Err(e) = compare(&s, "GET", &path, None) {
            failures.push(e);
        }
    }
    let (_, body) = http(
        s.ours,
        "GET",
        &format!("/render?target={}&{range}&format=json", enc(r#"events("*")"#)),
        None,
    )
    .unwrap();
    let at = body
        .find(&format!(", {t}]"))
        .map_or("", |i| &body[i.saturating_sub(12)..i]);
    assert!(
        at.ends_with("[2") || at.ends_with("[2.0"),
        "two events at {t}: {at}"
    );
    for path in [
        "/events/1",
        "/events/3/",
        "/events/3?pretty=1",
        "/events/4",
        "/events/99",
    ] {
        for method in ["GET", "DELETE"] {
            // Byte for byte: key order and `pretty` spelling matter to a client diffing them.
            let g = http(s.gw, method, path, None);
            let o = http(s.ours, method, path, None);
            if g != o {
                failures.push(format!("{method} {path}:\n gw:   {g:?}\n ours: {o:?}"));
            }
        }
    }
    assert_no_differences(&failures);
}
