//! The functions this evaluator implements, with graphite-web's parameter descriptions, for
//! `/functions` (Grafana builds its function editor from it).

use serde_json::{Map, Value, json};

/// One parameter as graphite-web's `Param` describes it.
#[derive(Debug, Clone, Copy)]
pub struct Param {
    /// Parameter name.
    pub name: &'static str,
    /// graphite-web's `ParamTypes` name.
    pub kind: &'static str,
    /// Whether the caller must give it.
    pub required: bool,
    /// Whether it repeats (`*args`).
    pub multiple: bool,
    /// The default, as JSON text, if any.
    pub default: Option<&'static str>,
    /// The allowed values, if a closed set.
    pub options: &'static [&'static str],
}

pub(crate) const fn p(name: &'static str, kind: &'static str) -> Param {
    Param {
        name,
        kind,
        required: false,
        multiple: false,
        default: None,
        options: &[],
    }
}
pub(crate) const fn req(name: &'static str, kind: &'static str) -> Param {
    Param {
        required: true,
        ..p(name, kind)
    }
}
pub(crate) const fn multi(name: &'static str, kind: &'static str, required: bool) -> Param {
    Param {
        required,
        multiple: true,
        ..p(name, kind)
    }
}
pub(crate) const fn def(name: &'static str, kind: &'static str, default: &'static str) -> Param {
    Param {
        default: Some(default),
        ..p(name, kind)
    }
}

/// One implemented function.
#[derive(Debug, Clone, Copy)]
pub struct FunctionInfo {
    /// The name targets call it by.
    pub name: &'static str,
    /// graphite-web's group (Combine, Transform, …).
    pub group: &'static str,
    /// Its parameters in order.
    pub params: &'static [Param],
}

pub(crate) const SL: Param = req("seriesList", "seriesList");
pub(crate) const SLS: Param = multi("seriesLists", "seriesList", true);
pub(crate) const N: Param = req("n", "integer");
pub(crate) const CONSOLIDATE_OPTIONS: &[&str] =
    &["sum", "average", "avg", "avg_zero", "min", "max", "first", "last"];

/// Every function the evaluator knows, in graphite-web's order of groups.
pub const FUNCTIONS: &[FunctionInfo] = &[
    FunctionInfo {
        name: "sumSeries",
        group: "Combine",
        params: &[SLS],
    },
    FunctionInfo {
        name: "sum",
        group: "Combine",
        params: &[SLS],
    },
    FunctionInfo {
        name: "averageSeries",
        group: "Combine",
        params: &[SLS],
    },
    FunctionInfo {
        name: "avg",
        group: "Combine",
        params: &[SLS],
    },
    FunctionInfo {
        name: "maxSeries",
        group: "Combine",
        params: &[SLS],
    },
    FunctionInfo {
        name: "minSeries",
        group: "Combine",
        params: &[SLS],
    },
    FunctionInfo {
        name: "aggregate",
        group: "Combine",
        params: &[SL, req("func", "aggFunc"), p("xFilesFactor", "float")],
    },
    FunctionInfo {
        name: "divideSeries",
        group: "Combine",
        params: &[
            req("dividendSeriesList", "seriesList"),
            req("divisorSeries", "seriesList"),
        ],
    },
    FunctionInfo {
        name: "asPercent",
        group: "Combine",
        params: &[SL, p("total", "any"), multi("nodes", "nodeOrTag", false)],
    },
    FunctionInfo {
        name: "groupByNode",
        group: "Combine",
        params: &[
            SL,
            req("nodeNum", "nodeOrTag"),
            def("callback", "aggOrSeriesFunc", "\"average\""),
        ],
    },
    FunctionInfo {
        name: "alias",
        group: "Alias",
        params: &[SL, req("newName", "string")],
    },
    FunctionInfo {
        name: "aliasByNode",
        group: "Alias",
        params: &[SL, multi("nodes", "nodeOrTag", true)],
    },
    FunctionInfo {
        name: "aliasSub",
        group: "Alias",
        params: &[SL, req("search", "string"), req("replace", "string")],
    },
    FunctionInfo {
        name: "scale",
        group: "Transform",
        params: &[SL, req("factor", "float")],
    },
    FunctionInfo {
        name: "offset",
        group: "Transform",
        params: &[SL, req("factor", "float")],
    },
    FunctionInfo {
        name: "absolute",
        group: "Transform",
        params: &[SL],
    },
    FunctionInfo {
        name: "derivative",
        group: "Transform",
        params: &[SL],
    },
    FunctionInfo {
        name: "nonNegativeDerivative",
        group: "Transform",
        params: &[SL, p("maxValue", "float"), p("minValue", "float")],
    },
    FunctionInfo {
        name: "perSecond",
        group: "Transform",
        params: &[SL, p("maxValue", "float"), p("minValue", "float")],
    },
    FunctionInfo {
        name: "integral",
        group: "Transform",
        params: &[SL],
    },
    FunctionInfo {
        name: "keepLastValue",
        group: "Transform",
        params: &[SL, def("limit", "intOrInf", "1e9999")],
    },
    FunctionInfo {
        name: "transformNull",
        group: "Transform",
        params: &[
            SL,
            def("default", "float", "0"),
            p("referenceSeries", "seriesList"),
        ],
    },
    FunctionInfo {
        name: "summarize",
        group: "Transform",
        params: &[
            SL,
            req("intervalString", "interval"),
            def("func", "aggFunc", "\"sum\""),
            def("alignToFrom", "boolean", "false"),
        ],
    },
    FunctionInfo {
        name: "hitcount",
        group: "Transform",
        params: &[
            SL,
            req("intervalString", "interval"),
            def("alignToInterval", "boolean", "false"),
        ],
    },
    FunctionInfo {
        name: "timeShift",
        group: "Transform",
        params: &[
            SL,
            req("timeShift", "interval"),
            def("resetEnd", "boolean", "true"),
            def("alignDst", "boolean", "false"),
        ],
    },
    FunctionInfo {
        name: "movingAverage",
        group: "Calculate",
        params: &[SL, req("windowSize", "intOrInterval"), p("xFilesFactor", "float")],
    },
    FunctionInfo {
        name: "highestMax",
        group: "Filter Series",
        params: &[SL, N],
    },
    FunctionInfo {
        name: "highestAverage",
        group: "Filter Series",
        params: &[SL, N],
    },
    FunctionInfo {
        name: "highestCurrent",
        group: "Filter Series",
        params: &[SL, N],
    },
    FunctionInfo {
        name: "lowestAverage",
        group: "Filter Series",
        params: &[SL, N],
    },
    FunctionInfo {
        name: "limit",
        group: "Filter Series",
        params: &[SL, N],
    },
    FunctionInfo {
        name: "sortByMaxima",
        group: "Sorting",
        params: &[SL],
    },
    FunctionInfo {
        name: "consolidateBy",
        group: "Special",
        params: &[
            SL,
            Param {
                options: CONSOLIDATE_OPTIONS,
                ..req("consolidationFunc", "string")
            },
        ],
    },
    FunctionInfo {
        name: "constantLine",
        group: "Special",
        params: &[req("value", "float")],
    },
];

/// Looks a function up by name.
pub fn function(name: &str) -> Option<&'static FunctionInfo> {
    crate::functions::all().find(|f| f.name == name)
}

fn param_json(p: &Param) -> Value {
    let mut m = Map::new();
    m.insert("name".into(), json!(p.name));
    m.insert("type".into(), json!(p.kind));
    if p.required {
        m.insert("required".into(), json!(true));
    }
    if p.multiple {
        m.insert("multiple".into(), json!(true));
    }
    if let Some(d) = p.default {
        // 1e9999 (Infinity) is not representable in serde_json; written as a big number literal
        // by the caller that serialises this text.
        let v = if d == "1e9999" {
            Value::String("__INF__".into())
        } else {
            serde_json::from_str(d).unwrap_or(Value::Null)
        };
        m.insert("default".into(), v);
    }
    if !p.options.is_empty() {
        m.insert("options".into(), json!(p.options));
    }
    Value::Object(m)
}

/// One function's `/functions` entry.
pub fn function_json(f: &FunctionInfo) -> Value {
    let args: Vec<&str> = f.params.iter().map(|p| p.name).collect();
    json!({
        "name": f.name,
        "function": format!("{}({})", f.name, args.join(", ")),
        "description": "",
        "module": "graphite.render.functions",
        "group": f.group,
        "params": f.params.iter().map(param_json).collect::<Vec<_>>(),
    })
}

/// The whole `/functions` answer as JSON text, with Infinity written `1e9999` as graphite-web does.
pub fn functions_json_text() -> String {
    let mut m = Map::new();
    for f in crate::functions::all() {
        m.insert(f.name.to_string(), function_json(f));
    }
    Value::Object(m).to_string().replace("\"__INF__\"", "1e9999")
}
