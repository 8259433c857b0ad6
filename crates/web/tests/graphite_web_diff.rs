//! Differential tests: the same whisper tree and the same `now`, served by graphite-web 1.1.8
//! (gunicorn, started here on a free loopback port) and by carbide's web API; the JSON answers are
//! compared. Fails, naming scripts/install-test-deps.sh, when graphite-web or gunicorn is missing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers fail loudly

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use carbide_core::Retention;
use serde_json::Value;

const NOW: i64 = 1_700_000_000 - 1_700_000_000 % 60;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn write_tree(root: &Path) {
    let retentions = Retention::parse_list("60:720,300:600").unwrap();
    let mut metrics: Vec<(String, Vec<(i64, f64)>)> = Vec::new();
    for (h, host) in ["web1", "web2", "web3"].iter().enumerate() {
        for (k, kind) in ["user", "system"].iter().enumerate() {
            let pts = (1..=200)
                .filter(|i| (i + h as i64) % 7 != 0)
                .map(|i| {
                    let v = ((i * (h as i64 + 2) * (k as i64 + 1)) % 37) as f64 * 1.5 - 4.0;
                    (NOW - i * 60, v)
                })
                .collect();
            metrics.push((format!("servers.{host}.cpu.{kind}"), pts));
        }
        let counter = (1..=200)
            .map(|i| (NOW - i * 60, ((300 - i) * (h as i64 + 1) % 500) as f64))
            .collect();
        metrics.push((format!("servers.{host}.requests"), counter));
    }
    metrics.push((
        "other.single".into(),
        vec![(NOW - 120, 100.0), (NOW - 60, 1e300 * 1e10)],
    ));
    for (name, pts) in metrics {
        let mut path = root.to_path_buf();
        for part in name.split('.') {
            path.push(part);
        }
        path.set_extension("wsp");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        carbide_whisper::file::create(&path, &retentions, &Default::default()).unwrap();
        carbide_whisper::file::update_many(&path, &pts, NOW, false).unwrap();
    }
}

struct Gunicorn(Child);

impl Drop for Gunicorn {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_graphite_web(dir: &Path, whisper: &Path, port: u16) -> Gunicorn {
    for prog in [
        "/usr/bin/gunicorn",
        "/usr/lib/python3/dist-packages/graphite/wsgi.py",
    ] {
        assert!(
            Path::new(prog).exists(),
            "{prog} is missing: graphite-web differential tests need Debian's graphite-web and gunicorn; run scripts/install-test-deps.sh"
        );
    }
    let conf = dir.join("conf");
    std::fs::create_dir_all(&conf).unwrap();
    std::fs::create_dir_all(dir.join("log")).unwrap();
    let d = dir.display();
    let settings = format!(
        "SECRET_KEY = 'carbide-test'\nALLOWED_HOSTS = ['127.0.0.1', 'localhost']\nTIME_ZONE = 'UTC'\n\
         LOG_ROTATION = False\nGRAPHITE_ROOT = '/usr/share/graphite-web'\nSTATIC_ROOT = '/usr/share/graphite-web/static'\n\
         CONF_DIR = '{d}/conf'\nSTORAGE_DIR = '{d}'\nLOG_DIR = '{d}/log'\nINDEX_FILE = '{d}/index'\n\
         WHISPER_DIR = '{}'\nCARBONLINK_HOSTS = []\nCLUSTER_SERVERS = []\n\
         DATABASES = {{'default': {{'NAME': '{d}/graphite.db', 'ENGINE': 'django.db.backends.sqlite3', 'USER': '', 'PASSWORD': '', 'HOST': '', 'PORT': ''}}}}\n\
         FUNCTION_PLUGINS = []\n",
        whisper.display()
    );
    std::fs::write(conf.join("carbide_test_settings.py"), settings).unwrap();
    let env = [
        ("PYTHONPATH", conf.display().to_string()),
        ("GRAPHITE_SETTINGS_MODULE", "carbide_test_settings".into()),
        ("DJANGO_SETTINGS_MODULE", "graphite.settings".into()),
        ("PYTHONWARNINGS", "ignore".into()),
    ];
    let status = Command::new("/usr/bin/python3")
        .args(["-m", "django", "migrate", "--run-syncdb", "-v0"])
        .envs(env.iter().cloned())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "django migrate for graphite-web failed");
    let child = Command::new("/usr/bin/gunicorn")
        .args([
            "--bind",
            &format!("127.0.0.1:{port}"),
            "--workers",
            "1",
            "--timeout",
            "60",
        ])
        .args([
            "--pythonpath",
            &conf.display().to_string(),
            "graphite.wsgi:application",
        ])
        .envs(env.iter().cloned())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("log/gunicorn.log")).unwrap())
        .spawn()
        .unwrap();
    let g = Gunicorn(child);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some((200, _)) = http(port, "GET", "/metrics/find?query=*", None) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "graphite-web did not answer within 60 s; see {d}/log"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    g
}

/// A tiny HTTP/1.0 client: (status, body).
fn http(port: u16, method: &str, path: &str, form: Option<&str>) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(60))).ok()?;
    let body = form.unwrap_or("");
    let mut req = format!("{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nAccept: application/json\r\n");
    if form.is_some() {
        req.push_str(&format!(
            "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).ok()?;
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).ok()?;
    let text = String::from_utf8_lossy(&resp).into_owned();
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, body.to_string()))
}

fn close(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            x == y || (x - y).abs() <= 1e-9 * x.abs().max(y.abs())
        }
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(p, q)| close(p, q)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| close(v, w)))
        }
        _ => a == b,
    }
}

/// graphite-web writes Infinity as 1e9999, which serde_json cannot read: map it to a sentinel.
fn parse(body: &str) -> Value {
    let fixed = body.replace("-1e9999", "-1.5e308").replace("1e9999", "1.5e308");
    serde_json::from_str(&fixed).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

struct Servers {
    gw: u16,
    ours: u16,
    _gunicorn: Gunicorn,
    _dir: tempfile::TempDir,
}

fn servers() -> Servers {
    let dir = tempfile::tempdir().unwrap();
    let whisper = dir.path().join("whisper");
    write_tree(&whisper);
    let gw = free_port();
    let gunicorn = start_graphite_web(&dir.path().join("gw"), &whisper, gw);
    let storage = Arc::new(carbide_storage::Storage::open(&whisper).unwrap());
    let state = Arc::new(carbide_web::WebState {
        storage,
        time_zone: "UTC".into(),
        limits: Default::default(),
    });
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let ours = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async move {
            let l = tokio::net::TcpListener::from_std(listener).unwrap();
            carbide_web::run(l, state, std::future::pending()).await.unwrap();
        });
    });
    Servers {
        gw,
        ours,
        _gunicorn: gunicorn,
        _dir: dir,
    }
}

fn compare(s: &Servers, method: &str, path: &str, form: Option<&str>) -> Result<(), String> {
    let (gs, gb) = http(s.gw, method, path, form).ok_or("graphite-web did not answer")?;
    let (os, ob) = http(s.ours, method, path, form).ok_or("carbide did not answer")?;
    if gs != os {
        return Err(format!(
            "{path} {form:?}: status graphite-web {gs} vs ours {os}\n gw: {gb:.300}\n ours: {ob:.300}"
        ));
    }
    if gs != 200 {
        return Ok(());
    }
    let (mut g, mut o) = (parse(&gb), parse(&ob));
    // graphite-web shuffles find results before a stable sort by the last segment, so nodes of the
    // same name come in random order: compare completer and treejson answers as sets.
    if path.contains("/metrics/find") {
        for v in [&mut g, &mut o] {
            let list = match v {
                Value::Object(m) => m.get_mut("metrics").and_then(Value::as_array_mut),
                Value::Array(a) => Some(a),
                _ => None,
            };
            if let Some(list) = list {
                list.sort_by_key(|x| x.to_string());
            }
        }
    }
    if !close(&g, &o) {
        return Err(format!("{path} {form:?}:\n gw:   {g}\n ours: {o}"));
    }
    Ok(())
}

fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[test]
fn render_functions_find_and_formats_match_graphite_web() {
    let s = servers();
    let targets = [
        "servers.*.cpu.user",
        "other.single",
        "sumSeries(servers.*.cpu.user)",
        "sum(servers.*.cpu.*)",
        "averageSeries(servers.web1.cpu.*)",
        "avg(servers.*.cpu.user)",
        "maxSeries(servers.*.cpu.system)",
        "minSeries(servers.*.cpu.system)",
        "aggregate(servers.*.cpu.user,\"median\")",
        "alias(servers.web1.cpu.user,\"x\")",
        "aliasByNode(servers.*.cpu.user,1)",
        "aliasByNode(servers.*.cpu.*,1,-1)",
        "aliasByNode(sumSeries(servers.web1.cpu.*),1)",
        "aliasSub(servers.*.cpu.user,\"^servers\\.([^.]+)\\..*$\",\"host \\1\")",
        "aliasSub(servers.web2.cpu.user,\"(^.*$)\",\"\\1 A\")",
        "scale(servers.web1.cpu.user,2.5)",
        "scale(servers.web1.cpu.user,2)",
        "offset(servers.web1.cpu.user,-3)",
        "absolute(servers.web2.cpu.user)",
        "derivative(servers.web1.requests)",
        "nonNegativeDerivative(servers.*.requests)",
        "perSecond(servers.web3.requests)",
        "integral(servers.web1.cpu.user)",
        "keepLastValue(servers.web1.cpu.user)",
        "keepLastValue(servers.web2.cpu.user,1)",
        "transformNull(servers.web1.cpu.user)",
        "transformNull(servers.web1.cpu.user,-1.5)",
        "transformNull(servers.web1.cpu.user,7,servers.web2.cpu.user)",
        "consolidateBy(servers.web1.cpu.user,\"max\")",
        "constantLine(100)",
        "constantLine(1.5)",
        "limit(servers.*.cpu.*,2)",
        "highestMax(servers.*.cpu.*,2)",
        "highestAverage(servers.*.cpu.*,3)",
        "highestCurrent(servers.*.cpu.*,1)",
        "lowestAverage(servers.*.cpu.*,2)",
        "sortByMaxima(servers.*.cpu.user)",
        "groupByNode(servers.*.cpu.*,1,\"sumSeries\")",
        "groupByNode(servers.*.cpu.*,3)",
        "divideSeries(servers.*.cpu.user,servers.web1.cpu.system)",
        "asPercent(servers.*.cpu.user)",
        "asPercent(servers.*.cpu.user,servers.web1.requests)",
        "asPercent(servers.web1.cpu.user,50)",
        // (nonNegativeDerivative with maxValue over a series with gaps is a 500 in graphite-web 1.1.8
        // on Python 3: `None > maxValue`; ours skips the gaps. Tested where there are none.)
        "summarize(servers.web1.cpu.user,\"10min\")",
        "summarize(servers.web1.cpu.user,\"15min\",\"max\")",
        "summarize(servers.web1.cpu.user,\"7min\",\"avg\",true)",
        "hitcount(servers.web1.requests,\"10min\")",
        "timeShift(servers.web1.cpu.user,\"5min\")",
        "timeShift(servers.web1.cpu.user,\"-1h\",false)",
        "movingAverage(servers.web1.cpu.user,5)",
        "movingAverage(servers.web1.cpu.user,\"10min\")",
        "servers.web1.cpu.user|scale(3)|alias(\"piped\")",
    ];
    let mut failures = Vec::new();
    for t in targets {
        for range in ["from=-1h", "from=-3h&until=-1h", "from=-2d"] {
            let path = format!("/render?target={}&{range}&now={NOW}&format=json", enc(t));
            if let Err(e) = compare(&s, "GET", &path, None) {
                failures.push(e);
            }
        }
    }
    let path = format!(
        "/render?target={}&from=-3h&until=-1h&now={NOW}&format=json",
        enc("nonNegativeDerivative(servers.web2.requests,400)")
    );
    if let Err(e) = compare(&s, "GET", &path, None) {
        failures.push(e);
    }
    // Grafana's own requests: POST form, every target wrapped in aliasSub, maxDataPoints.
    for (t, mdp) in [
        ("servers.*.cpu.user", "50"),
        ("sumSeries(servers.*.cpu.*)", "7"),
        ("servers.web1.requests", "1"),
        ("constantLine(100)", "200"),
    ] {
        let wrapped = format!("aliasSub({t},\"(^.*$)\",\"\\1 A\")");
        let form = format!(
            "target={}&from=-6h&until=now&now={NOW}&format=json&maxDataPoints={mdp}",
            enc(&wrapped)
        );
        if let Err(e) = compare(&s, "POST", "/render", Some(&form)) {
            failures.push(e);
        }
    }
    let other = [
        format!(
            "/render?target[]=servers.web1.cpu.user&target[]=other.single&from=-1h&now={NOW}&format=json&noNullPoints=1"
        ),
        format!("/render?target=servers.web1.cpu.user&from=-1h&now={NOW}&format=json&jsonp=cb")
            .replace("jsonp=cb", "pretty=0"),
        format!("/render?target=servers.*.cpu.user&from=-1d&now={NOW}&format=json&maxDataPoints=100"),
        format!(
            "/render?target=servers.*.cpu.user&from=-1d&now={NOW}&format=json&maxDataPoints=33&xFilesFactor=0.5"
        ),
        "/metrics/find?query=*".to_string(),
        "/metrics/find?query=servers.*".to_string(),
        "/metrics/find?query=servers.web1.*".to_string(),
        "/metrics/find?query=servers.web%7B1%2C2%7D.cpu.*".to_string(),
        "/metrics/find?query=servers.web&format=completer".to_string(),
        "/metrics/find?query=servers.*.cpu&format=completer".to_string(),
        "/metrics/find?query=nothing.here".to_string(),
        "/metrics/expand?query=servers.*.cpu.*".to_string(),
        "/metrics/expand?query=servers.*&query=other.*&groupByExpr=1".to_string(),
        "/metrics/expand?query=servers.*&leavesOnly=1".to_string(),
        "/metrics/index.json".to_string(),
    ];
    for path in &other {
        if let Err(e) = compare(&s, "GET", path, None) {
            failures.push(e);
        }
    }
    if let Err(e) = compare(&s, "POST", "/metrics/find", Some("query=servers.*")) {
        failures.push(e);
    }
    assert!(
        failures.is_empty(),
        "{} differences:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

#[test]
fn csv_raw_and_errors_match_graphite_web() {
    let s = servers();
    for fmt in ["csv", "raw"] {
        let path = format!(
            "/render?target=servers.web1.cpu.*&target=other.single&from=-30min&now={NOW}&format={fmt}"
        );
        let (gs, gb) = http(s.gw, "GET", &path, None).unwrap();
        let (os, ob) = http(s.ours, "GET", &path, None).unwrap();
        assert_eq!((gs, os), (200, 200));
        assert_eq!(gb, ob, "format={fmt}");
    }
    // graphite-web parses the longest valid prefix and answers 200 for `sumSeries(a.b`; we refuse
    // with 400 naming the position, so a typo is not a silently empty graph.
    let path = format!("/render?target=sumSeries(a.b&now={NOW}&format=json");
    let (os, ob) = http(s.ours, "GET", &path, None).unwrap();
    assert_eq!(os, 400, "{ob}");
    assert!(ob.contains("position"), "{ob}");
    // Bad times: both refuse.
    for path in [
        format!("/render?target=a.b&from=-1h&until=-1h&now={NOW}&format=json"),
        format!("/render?target=a.b&from=garbage&now={NOW}&format=json"),
    ] {
        let (gs, _) = http(s.gw, "GET", &path, None).unwrap();
        let (os, ob) = http(s.ours, "GET", &path, None).unwrap();
        assert_eq!(os, 400, "{path}: {ob}");
        assert!(gs >= 400, "{path}: graphite-web answered {gs}");
    }
    let (vs, vb) = http(s.ours, "GET", "/version", None).unwrap();
    assert_eq!((vs, vb.as_str()), (200, carbide_web::GRAPHITE_VERSION));
    let (fs, fb) = http(s.ours, "GET", "/functions", None).unwrap();
    assert_eq!(fs, 200);
    let ours = parse(&fb);
    // graphite-web 1.1.8's /functions answers 500 on Python >= 3.11 (inspect.getargspec is gone), so
    // its parameter tables are read from the module itself.
    let conf = s._dir.path().join("gw/conf");
    let out = Command::new("/usr/bin/python3")
        .args(["-c", "import json,django; django.setup(); from graphite.functions import SeriesFunctions; \
print(json.dumps({n: {'group': f.group, 'params': [p.toJSON() for p in f.params]} for n, f in SeriesFunctions().items()}))"])
        .env("PYTHONPATH", &conf)
        .env("GRAPHITE_SETTINGS_MODULE", "carbide_test_settings")
        .env("DJANGO_SETTINGS_MODULE", "graphite.settings")
        .env("PYTHONWARNINGS", "ignore")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let theirs = parse(
        &String::from_utf8_lossy(&out.stdout)
            .replace("-Infinity", "-1e9999")
            .replace("Infinity", "1e9999")
            .replace("NaN", "null"),
    );
    for (name, f) in ours.as_object().unwrap() {
        let g = &theirs[name];
        assert!(
            g.is_object(),
            "graphite-web has no function {name}: {:.300}",
            theirs.to_string()
        );
        assert_eq!(f["group"], g["group"], "{name} group");
        let names = |v: &Value| -> Vec<(Value, Value, Value, Value)> {
            v["params"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| {
                    (
                        p["name"].clone(),
                        p["type"].clone(),
                        p["required"].clone(),
                        p["multiple"].clone(),
                    )
                })
                .collect()
        };
        assert_eq!(names(f), names(g), "{name} params");
    }
}
