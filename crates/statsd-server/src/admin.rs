//! The management console (etsy's `mgmt_port`, 8126): one command per received chunk, answered
//! as stats.js answers it.
//!
//! `help`, `config`, `health [up|down]`, `stats`, `counters`, `timers`, `gauges`,
//! `delcounters|deltimers|delgauges <key or folder.*>…`, `quit`; anything else is `ERROR`.

use std::io::Write;
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use carbide_statsd::StatKind;
use carbide_statsd::parse::decode_ascii;
use serde_json::Value;

use crate::inspect;
use crate::server::{Shared, now_s, read_chunks};

/// Whether `k` is a JS array index, which object enumeration puts first, ascending.
fn index(k: &str) -> Option<u32> {
    if k.is_empty() || k.len() > 10 || (k.len() > 1 && k.starts_with('0')) {
        return None;
    }
    k.parse::<u32>().ok().filter(|v| *v != u32::MAX)
}

/// Items in JS property order: array indices ascending, then the rest in insertion order.
fn js_order<T>(items: Vec<(&str, T)>) -> Vec<(&str, T)> {
    let (mut idx, rest): (Vec<_>, Vec<_>) = items.into_iter().partition(|(k, _)| index(k).is_some());
    idx.sort_by_key(|(k, _)| index(k));
    idx.extend(rest);
    idx
}

/// A JS value as `String(v)` prints it, for `config`.
fn js_string(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n
            .as_f64()
            .map(carbide_statsd::jsnum::js_to_string)
            .unwrap_or_else(|| n.to_string()),
        Value::String(s) => s.clone(),
        Value::Array(a) => a
            .iter()
            .map(|v| match v {
                Value::Null => String::new(),
                v => js_string(v),
            })
            .collect::<Vec<_>>()
            .join(","),
        Value::Object(_) => "[object Object]".into(),
    }
}

/// The answer to one command line; None closes the connection (`quit`).
pub(crate) fn answer(shared: &Shared, line: &str) -> Option<String> {
    let mut words = line.trim().split(' ');
    let cmd = words.next().unwrap_or("");
    let params: Vec<&str> = words.collect();
    let mut out = String::new();
    match cmd {
        "help" => out.push_str("Commands: stats, counters, timers, gauges, delcounters, deltimers, delgauges, health, config, quit\n\n"),
        "config" => {
            out.push('\n');
            for (k, v) in &shared.raw_config {
                match v {
                    Value::Object(sub) => {
                        for (sk, sv) in sub {
                            out.push_str(&format!("{k} > {sk}: {}\n", js_string(sv)));
                        }
                    }
                    // Arrays are objects to JS: one line per index.
                    Value::Array(items) => {
                        for (i, sv) in items.iter().enumerate() {
                            out.push_str(&format!("{k} > {i}: {}\n", js_string(sv)));
                        }
                    }
                    Value::Null => {
                        // typeof null === 'object', with no own properties.
                    }
                    v => out.push_str(&format!("{k}: {}\n", js_string(v))),
                }
            }
        }
        "health" => {
            if let Some(p) = params.first() {
                match p.to_lowercase().as_str() {
                    "up" => shared.health_up.store(true, Ordering::Relaxed),
                    "down" => shared.health_up.store(false, Ordering::Relaxed),
                    _ => {}
                }
            }
            let up = shared.health_up.load(Ordering::Relaxed);
            out.push_str(if up { "health: up\n" } else { "health: down\n" });
        }
        "stats" => {
            let now = now_s();
            out.push_str(&format!("uptime: {}\n", now - shared.startup_s));
            let seen = shared.last_msg_seen.load(Ordering::Relaxed);
            out.push_str(&format!("messages.last_msg_seen: {}\n", now - seen));
            let bad = shared.engine().stats().bad_lines_seen;
            out.push_str(&format!("messages.bad_lines_seen: {bad}\n"));
            let g = *shared.graphite();
            out.push_str(&format!("graphite.last_flush: {}\n", now - g.last_flush));
            out.push_str(&format!("graphite.last_exception: {}\n", now - g.last_exception));
            out.push_str(&format!(
                "graphite.flush_time: {}\n",
                carbide_statsd::jsnum::js_to_string(g.flush_time)
            ));
            out.push_str(&format!("graphite.flush_length: {}\n", g.flush_length));
            out.push_str("END\n\n");
        }
        "counters" | "gauges" => {
            let engine = shared.engine();
            let items: Vec<(&str, f64)> = if cmd == "counters" {
                engine.counters().collect()
            } else {
                engine.gauges().collect()
            };
            out.push_str(&inspect::numbers(js_order(items).into_iter()));
            out.push_str("\nEND\n\n");
        }
        "timers" => {
            let engine = shared.engine();
            let items: Vec<(&str, &[f64])> = engine.timers().collect();
            out.push_str(&inspect::arrays(js_order(items).into_iter()));
            out.push_str("\nEND\n\n");
        }
        "delcounters" | "deltimers" | "delgauges" => {
            let kind = match cmd {
                "delcounters" => StatKind::Counters,
                "deltimers" => StatKind::Timers,
                _ => StatKind::Gauges,
            };
            let mut engine = shared.engine();
            for p in &params {
                let deleted = engine.delete_stats(kind, p);
                if deleted.is_empty() {
                    out.push_str(&format!("metric {p} not found\n"));
                }
                for d in deleted {
                    out.push_str(&format!("deleted: {d}\n"));
                }
            }
            out.push_str("END\n\n");
        }
        "quit" => return None,
        _ => out.push_str("ERROR\n"),
    }
    Some(out)
}

/// One console connection: each chunk read is one command, as node's `data` events are.
pub(crate) fn session(mut conn: TcpStream, shared: Arc<Shared>) {
    let Ok(mut writer) = conn.try_clone() else {
        return;
    };
    let stop = &shared.stop;
    read_chunks(&mut conn, stop, |chunk| {
        let text = decode_ascii(chunk);
        match answer(&shared, &text) {
            Some(reply) => writer.write_all(reply.as_bytes()).is_ok(),
            None => false,
        }
    });
}
