//! Python's `float()` on text and bytes, compared with our reimplementation on random strings
//! built from the characters that matter (digits, signs, underscores, exponents, words,
//! Unicode digits and whitespace).

mod common;

use carbide_protocol::pyfloat::{parse_py_float_bytes, parse_py_float_str};
use common::{Rng, hex, run_python};

const SCRIPT: &str = r#"
for line in sys.stdin:
    kind, h = line.split()
    raw = bytes.fromhex(h) if h != '-' else b''
    arg = raw.decode('utf-8') if kind == 's' else raw
    try:
        print(struct.pack('>d', float(arg)).hex())
    except (ValueError, TypeError):
        print('ERR')
"#;

#[test]
fn float_agrees_with_python() {
    let pieces = [
        "1", "0", "9", "_", ".", "e", "E", "+", "-", "inf", "INF", "inity", "nan", "NaN", " ", "\t",
        "\u{a0}", "\u{3000}", "\u{1c}", "١", "٣", "１", "x", "0x", "5", "00", "e5", "\u{85}", "\u{200b}",
        "i", "n", "1e999", "-1e-999",
    ];
    let mut rng = Rng(0xf10a_7000_0000_0001);
    let mut cases: Vec<(char, String)> = Vec::new();
    for _ in 0..6000 {
        let n = 1 + rng.below(6);
        let s: String = (0..n).map(|_| rng.pick(&pieces)).collect();
        let kind = if s.is_ascii() && rng.below(2) == 0 {
            'b'
        } else {
            's'
        };
        cases.push((kind, s));
    }
    let input: String = cases
        .iter()
        .map(|(k, s)| {
            format!(
                "{k} {}\n",
                if s.is_empty() {
                    "-".into()
                } else {
                    hex(s.as_bytes())
                }
            )
        })
        .collect();
    let out = run_python(SCRIPT, &input);
    let mut failures = Vec::new();
    let mut ok = 0;
    for ((kind, s), want) in cases.iter().zip(out.lines()) {
        let ours = if *kind == 's' {
            parse_py_float_str(s)
        } else {
            parse_py_float_bytes(s.as_bytes())
        };
        let ours = ours
            .map(|f| hex(&f.to_be_bytes()))
            .unwrap_or_else(|| "ERR".into());
        if ours != "ERR" {
            ok += 1;
        }
        if ours != want {
            failures.push(format!("{kind} {s:?}: python {want}, ours {ours}"));
        }
    }
    assert_eq!(out.lines().count(), cases.len());
    assert!(
        failures.is_empty(),
        "{} disagreements:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(ok > 500, "only {ok} strings parsed");
}
