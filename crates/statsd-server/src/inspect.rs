//! node's `util.inspect` (v12+ defaults: breakLength 80, compact 3, maxArrayLength 100) for the
//! shapes the console prints: an object of numbers (`counters`, `gauges`) and an object of
//! number arrays (`timers`).

use carbide_statsd::jsnum::js_to_string;

const BREAK_LENGTH: usize = 80;
const MAX_ARRAY: usize = 100;

/// A number as inspect prints it (`-0` keeps its sign).
fn number(v: f64) -> String {
    if v == 0.0 && v.is_sign_negative() {
        "-0".into()
    } else {
        js_to_string(v)
    }
}

/// An object key: bare when it is an identifier, otherwise quoted as inspect quotes strings.
fn key(k: &str) -> String {
    let ident = k
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ident {
        return k.to_string();
    }
    let quote = if !k.contains('\'') {
        '\''
    } else if !k.contains('"') {
        '"'
    } else if !k.contains('`') && !k.contains("${") {
        '`'
    } else {
        '\''
    };
    let mut s = String::with_capacity(k.len() + 2);
    s.push(quote);
    for c in k.chars() {
        match c {
            '\n' => s.push_str("\\n"),
            '\t' => s.push_str("\\t"),
            '\r' => s.push_str("\\r"),
            '\u{8}' => s.push_str("\\b"),
            '\u{c}' => s.push_str("\\f"),
            '\u{b}' => s.push_str("\\v"),
            '\\' => s.push_str("\\\\"),
            c if c == quote => {
                s.push('\\');
                s.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                s.push_str(&format!("\\x{:02X}", c as u32));
            }
            c => s.push(c),
        }
    }
    s.push(quote);
    s
}

fn below_break_length(output: &[String], start: usize) -> bool {
    let mut total = output.len() + start;
    if total + output.len() > BREAK_LENGTH {
        return false;
    }
    for o in output {
        total += o.chars().count();
        if total > BREAK_LENGTH {
            return false;
        }
    }
    true
}

fn reduce(output: Vec<String>, entries: usize, indent: usize, open: &str, close: &str) -> String {
    if entries == output.len() {
        let start = output.len() + indent + open.len() + 10;
        if below_break_length(&output, start) {
            let joined = output.join(", ");
            if !joined.contains('\n') {
                return format!("{open} {joined} {close}");
            }
        }
    }
    let ind = format!("\n{}", " ".repeat(indent));
    format!("{open}{ind}  {}{ind}{close}", output.join(&format!(",{ind}  ")))
}

/// node's `groupArrayElements` for an array of numbers (right-aligned columns).
fn group(output: Vec<String>, indent: usize, more: bool) -> Vec<String> {
    let data_len: Vec<usize> = output.iter().map(|o| o.chars().count()).collect();
    let output_len = if more { output.len() - 1 } else { output.len() };
    let total: usize = data_len[..output_len].iter().map(|l| l + 2).sum();
    let max_len = data_len[..output_len].iter().copied().max().unwrap_or(0);
    let actual_max = max_len + 2;
    if !(actual_max * 3 + indent < BREAK_LENGTH && (total as f64 / actual_max as f64 > 5.0 || max_len <= 6)) {
        return output;
    }
    let average_bias = (actual_max as f64 - total as f64 / output.len() as f64).sqrt();
    let biased_max = (actual_max as f64 - 3.0 - average_bias).max(1.0);
    let columns = [
        carbide_statsd::jsnum::js_round((2.5 * biased_max * output_len as f64).sqrt() / biased_max) as usize,
        (BREAK_LENGTH - indent) / actual_max,
        12,
        15,
    ]
    .into_iter()
    .min()
    .unwrap_or(1);
    if columns <= 1 {
        return output;
    }
    let max_line: Vec<usize> = (0..columns)
        .map(|i| {
            (i..output_len)
                .step_by(columns)
                .map(|j| data_len[j])
                .max()
                .unwrap_or(0)
                + 2
        })
        .collect();
    let mut tmp = Vec::new();
    let mut i = 0;
    while i < output_len {
        let max = (i + columns).min(output_len);
        let mut s = String::new();
        for j in i..max - 1 {
            let cell = format!("{}, ", output[j]);
            s.push_str(&format!("{cell:>w$}", w = max_line[j - i]));
        }
        let j = max - 1;
        s.push_str(&format!("{:>w$}", output[j], w = max_line[j - i] - 2));
        tmp.push(s);
        i += columns;
    }
    if more && let Some(last) = output.last() {
        tmp.push(last.clone());
    }
    tmp
}

fn array(values: &[f64], indent: usize) -> String {
    if values.is_empty() {
        return "[]".into();
    }
    let mut output: Vec<String> = values.iter().take(MAX_ARRAY).map(|v| number(*v)).collect();
    let more = values.len() > MAX_ARRAY;
    if more {
        let n = values.len() - MAX_ARRAY;
        output.push(format!("... {n} more item{}", if n > 1 { "s" } else { "" }));
    }
    let entries = output.len();
    let output = if entries > 6 {
        group(output, indent, more)
    } else {
        output
    };
    reduce(output, entries, indent, "[", "]")
}

/// `util.inspect` of an object of numbers.
pub fn numbers<'a>(entries: impl Iterator<Item = (&'a str, f64)>) -> String {
    let output: Vec<String> = entries
        .map(|(k, v)| format!("{}: {}", key(k), number(v)))
        .collect();
    if output.is_empty() {
        return "{}".into();
    }
    let n = output.len();
    reduce(output, n, 0, "{", "}")
}

/// `util.inspect` of an object of number arrays.
pub fn arrays<'a>(entries: impl Iterator<Item = (&'a str, &'a [f64])>) -> String {
    let output: Vec<String> = entries
        .map(|(k, v)| format!("{}: {}", key(k), array(v, 2)))
        .collect();
    if output.is_empty() {
        return "{}".into();
    }
    let n = output.len();
    reduce(output, n, 0, "{", "}")
}
