//! `Number(string)` and `String(number)` against node itself, on edge cases and random doubles.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use carbide_statsd::jsnum::{is_js_number, js_number, js_to_string};

/// Runs a JS snippet that reads JSON lines on stdin and prints one result per line.
fn node_map(script: &str, inputs: &[String]) -> Vec<String> {
    let mut child = Command::new(common::node())
        .arg("-e")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let body = inputs.join("\n") + "\n";
    let writer = std::thread::spawn(move || stdin.write_all(body.as_bytes()).unwrap());
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(out.status.success(), "node failed");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

const READ_LINES: &str = "const ls=require('fs').readFileSync(0,'utf8').split('\\n');ls.pop();";

#[test]
fn number_to_string_matches_node() {
    let mut values: Vec<f64> = vec![
        0.0,
        -0.0,
        1.0,
        -1.0,
        0.1,
        0.2,
        0.1 + 0.2,
        1e21,
        1e20,
        999999999999999900000.0,
        1e-6,
        1e-7,
        1.5e-7,
        123e-20,
        5e-324,
        f64::MAX,
        f64::MIN_POSITIVE,
        2f64.powi(53),
        2f64.powi(70),
        1.0 / 3.0,
        2.0 / 3.0,
        100.0,
        1234.5678,
        0.000001234,
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        4.35,
        0.3 / 0.4,
        9.5367431640625e-7,
        1e300 * 10.0,
    ];
    // A fixed xorshift stream: random bit patterns cover every exponent.
    let mut s: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in 0..4000 {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        let v = match i % 3 {
            0 => f64::from_bits(s),
            1 => (s >> 11) as f64 / (1u64 << (s % 60)) as f64,
            _ => ((s % 1_000_000) as f64) / 1000.0,
        };
        values.push(v);
    }
    // Halfway cases: at 2^51..2^53 a double's last place is 1/4 or 1/2, so many sit exactly
    // between two 16/17-digit decimals, where V8 rounds the digit to even.
    for j in 0..3000u32 {
        let base = 2f64.powi(51) + f64::from(j) * 7919.0 * 1024.0;
        values.extend([base + 0.25, base + 0.75, base * 2.0 + 0.5, base * 2.0 + 1.5]);
    }
    // Bits as decimal text: JSON loses NaN and -0, so rebuild the double from its bits in JS.
    let inputs: Vec<String> = values.iter().map(|v| v.to_bits().to_string()).collect();
    let script = format!(
        "{READ_LINES}const b=new DataView(new ArrayBuffer(8));\
         for(const l of ls){{b.setBigUint64(0,BigInt(l));console.log(String(b.getFloat64(0)));}}"
    );
    let want = node_map(&script, &inputs);
    assert_eq!(want.len(), values.len());
    for (v, w) in values.iter().zip(&want) {
        assert_eq!(&js_to_string(*v), w, "bits {:#x}", v.to_bits());
    }
}

#[test]
fn string_to_number_matches_node() {
    let mut inputs: Vec<String> = [
        "",
        " ",
        "1",
        "-1",
        "+1",
        "1.",
        ".1",
        ".",
        "1e5",
        "1E+5",
        "1e-5",
        "1e",
        "e1",
        "0x1F",
        "0X1f",
        "0x",
        "-0x1",
        "+0x1",
        "0b11",
        "0o17",
        "0o8",
        "Infinity",
        "-Infinity",
        "+Infinity",
        "infinity",
        "inf",
        "NaN",
        "1_000",
        "00012",
        "1.2.3",
        "--1",
        "+-1",
        "\t42\n",
        "\u{a0}7",
        "\u{feff}8",
        "\u{2028}9\u{2029}",
        "\u{85}1",
        "\u{180e}1",
        "1e400",
        "-1e400",
        "1e-400",
        "0x1fffffffffffff1",
        "0x20000000000000100000001",
        "0x",
        "12abc",
        "1 2",
        "٣",
        "123456789012345678901234567890",
        "0.1e1",
        "5e-324",
        "2.4703282292062328e-324",
        "0b",
        "0o",
        "  -0  ",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for i in 0..300u32 {
        inputs.push(format!(
            "{}.{}e{}",
            i * 7919 % 1000,
            i * 104_729 % 100_000,
            i % 40
        ));
    }
    let json: Vec<String> = inputs.iter().map(|s| serde_json::to_string(s).unwrap()).collect();
    let script = format!(
        "{READ_LINES}for(const l of ls){{const s=JSON.parse(l);const n=Number(s);\
         console.log(String(n)+(Object.is(n,-0)?' neg0':'')+' '+Boolean(s&&!isNaN(s)));}}"
    );
    let want = node_map(&script, &json);
    assert_eq!(want.len(), inputs.len());
    for (s, w) in inputs.iter().zip(&want) {
        let n = js_number(s);
        let neg0 = if n == 0.0 && n.is_sign_negative() {
            " neg0"
        } else {
            ""
        };
        let got = format!("{}{neg0} {}", js_to_string(n), is_js_number(s));
        assert_eq!(&got, w, "{s:?}");
    }
}
