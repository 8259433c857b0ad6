//! Prometheus text exposition (format 0.0.4), the one writer behind every role's `/metrics`: the
//! cache's counters, and the relay's and aggregator's per-destination ones (with a label).

use std::fmt::Write;

/// A metric family's type line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only ever grows (a `_total`).
    Counter,
    /// Goes up and down (a size, a state).
    Gauge,
}

/// A `/metrics` page being written, family by family.
#[derive(Debug, Default)]
pub struct Exposition {
    out: String,
}

/// A sample value as Prometheus reads it (`+Inf`, `-Inf`, `NaN`; integers without a fraction).
fn value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        v.to_string()
    }
}

/// A label value with `\`, `"` and newlines escaped.
fn escape(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

impl Exposition {
    /// An empty page.
    pub fn new() -> Exposition {
        Exposition::default()
    }

    fn header(&mut self, name: &str, help: &str, kind: Kind) {
        let kind = match kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        };
        let _ = write!(self.out, "# HELP {name} {help}\n# TYPE {name} {kind}\n");
    }

    /// One unlabelled family with a single sample.
    pub fn single(&mut self, name: &str, help: &str, kind: Kind, v: f64) {
        self.header(name, help, kind);
        let _ = writeln!(self.out, "{name} {}", value(v));
    }

    /// A counter with a single sample.
    pub fn counter(&mut self, name: &str, help: &str, v: f64) {
        self.single(name, help, Kind::Counter, v);
    }

    /// A gauge with a single sample.
    pub fn gauge(&mut self, name: &str, help: &str, v: f64) {
        self.single(name, help, Kind::Gauge, v);
    }

    /// A family with one sample per label set, e.g. one per relay destination.
    pub fn labelled<'a>(
        &mut self,
        name: &str,
        help: &str,
        kind: Kind,
        samples: impl IntoIterator<Item = (&'a [(&'a str, &'a str)], f64)>,
    ) {
        self.header(name, help, kind);
        for (labels, v) in samples {
            self.out.push_str(name);
            if !labels.is_empty() {
                self.out.push('{');
                for (i, (k, val)) in labels.iter().enumerate() {
                    if i > 0 {
                        self.out.push(',');
                    }
                    let _ = write!(self.out, "{k}=\"{}\"", escape(val));
                }
                self.out.push('}');
            }
            let _ = writeln!(self.out, " {}", value(v));
        }
    }

    /// The page.
    pub fn finish(self) -> String {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_labels_and_special_values() {
        let mut e = Exposition::new();
        e.counter("a_total", "As.", 3.0);
        e.gauge("b", "Bs.", 0.5);
        e.labelled(
            "c_total",
            "Cs.",
            Kind::Counter,
            [
                (&[("destination", "127.0.0.1:2004:a")][..], 7.0),
                (&[("destination", "odd\"\\\nname")][..], f64::INFINITY),
            ],
        );
        e.gauge("d", "Ds.", f64::NAN);
        assert_eq!(
            e.finish(),
            "# HELP a_total As.\n# TYPE a_total counter\na_total 3\n\
             # HELP b Bs.\n# TYPE b gauge\nb 0.5\n\
             # HELP c_total Cs.\n# TYPE c_total counter\n\
             c_total{destination=\"127.0.0.1:2004:a\"} 7\n\
             c_total{destination=\"odd\\\"\\\\\\nname\"} +Inf\n\
             # HELP d Ds.\n# TYPE d gauge\nd NaN\n"
        );
    }
}
