//! graphite-web's render functions, each written from its behaviour in `render/functions.py` 1.1.8:
//! the same names, tags and values, so Grafana panels read the same.
//!
//! # Layout
//! One module per group of graphite-web's function list; each has its `FUNCTIONS` table (the
//! `/functions` entry: name, group, parameters) and a `dispatch` that runs a function of its table.
//! [`GROUPS`] joins them; a name is looked up once and the call goes to the module that lists it.
//! - [`base`]: the first functions written, and the helpers every group shares.
//! - [`combine`], [`transform`], [`calculate`], [`filter`], [`graph`], [`alias`], [`special`],
//!   [`tags`]: graphite-web's groups of the same names (filter holds Filter Series, Filter Data and
//!   Sorting; graph the styling functions).

use carbide_query::grammar::Call;

use crate::RenderError;
use crate::catalog::{self, FunctionInfo};
use crate::eval::{Context, Value};
use crate::series::TimeSeries;

pub mod alias;
pub mod base;
pub mod calculate;
pub mod combine;
pub mod filter;
pub mod graph;
pub mod special;
pub mod tags;
pub mod transform;

/// Runs a function listed in one group's table.
pub(crate) type Dispatch = fn(&Context<'_>, &Call, &Args) -> Result<Vec<TimeSeries>, RenderError>;

/// Every group: its function table and the function that runs its entries.
pub(crate) const GROUPS: &[(&[FunctionInfo], Dispatch)] = &[
    (catalog::FUNCTIONS, base::dispatch),
    (combine::FUNCTIONS, combine::dispatch),
    (transform::FUNCTIONS, transform::dispatch),
    (calculate::FUNCTIONS, calculate::dispatch),
    (filter::FUNCTIONS, filter::dispatch),
    (graph::FUNCTIONS, graph::dispatch),
    (alias::FUNCTIONS, alias::dispatch),
    (special::FUNCTIONS, special::dispatch),
    (tags::FUNCTIONS, tags::dispatch),
];

/// Evaluated arguments of one call, addressed by position or by graphite-web's parameter name.
pub(crate) struct Args {
    /// Positional arguments, evaluated.
    pub(crate) pos: Vec<Value>,
    /// Keyword arguments, evaluated, in the order given.
    pub(crate) kw: Vec<(String, Value)>,
    /// The function called, for parameter names and error messages.
    pub(crate) info: &'static FunctionInfo,
}

impl Args {
    pub(crate) fn get(&self, i: usize) -> Option<&Value> {
        if let Some(v) = self.pos.get(i) {
            return Some(v);
        }
        let name = self.info.params.get(i)?.name;
        self.kw.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v)
    }

    pub(crate) fn bad(&self, what: &str) -> RenderError {
        RenderError::BadArgument(format!("{}: {what}", self.info.name))
    }

    pub(crate) fn series(&self, i: usize) -> Result<Vec<TimeSeries>, RenderError> {
        match self.get(i) {
            Some(Value::Series(s)) => Ok(s.clone()),
            _ => Err(self.bad(&format!("argument {} must be a seriesList", i + 1))),
        }
    }

    /// A number with whether it was written as an integer (names print it as Python's `str`).
    pub(crate) fn number(&self, i: usize) -> Result<Option<(f64, bool)>, RenderError> {
        match self.get(i) {
            None | Some(Value::None) => Ok(None),
            Some(Value::Int(n)) => Ok(Some((*n as f64, true))),
            Some(Value::Float(f)) => Ok(Some((*f, false))),
            Some(Value::Bool(b)) => Ok(Some((f64::from(u8::from(*b)), true))),
            _ => Err(self.bad(&format!("argument {} must be a number", i + 1))),
        }
    }

    pub(crate) fn required_number(&self, i: usize) -> Result<(f64, bool), RenderError> {
        self.number(i)?
            .ok_or_else(|| self.bad(&format!("missing argument {}", i + 1)))
    }

    pub(crate) fn string(&self, i: usize) -> Result<Option<String>, RenderError> {
        match self.get(i) {
            None | Some(Value::None) => Ok(None),
            Some(Value::Str(s)) => Ok(Some(s.clone())),
            _ => Err(self.bad(&format!("argument {} must be a string", i + 1))),
        }
    }

    pub(crate) fn required_string(&self, i: usize) -> Result<String, RenderError> {
        self.string(i)?
            .ok_or_else(|| self.bad(&format!("missing argument {}", i + 1)))
    }

    pub(crate) fn boolean(&self, i: usize, default: bool) -> bool {
        match self.get(i) {
            Some(Value::Bool(b)) => *b,
            Some(Value::Int(n)) => *n != 0,
            _ => default,
        }
    }

    pub(crate) fn count(&self, i: usize) -> Result<usize, RenderError> {
        let (n, _) = self.required_number(i)?;
        Ok(if n <= 0.0 { 0 } else { n as usize })
    }
}

/// Calls a function by name.
pub fn call(ctx: &Context<'_>, call: &Call) -> Result<Vec<TimeSeries>, RenderError> {
    let (info, dispatch) = GROUPS
        .iter()
        .find_map(|(table, dispatch)| table.iter().find(|f| f.name == call.name).map(|f| (f, *dispatch)))
        .ok_or_else(|| RenderError::UnknownFunction(call.name.clone()))?;
    let pos = call
        .args
        .iter()
        .map(|a| ctx.value(a))
        .collect::<Result<Vec<_>, _>>()?;
    // graphite-web fetches a keyword argument's paths only if a positional one prefetched them.
    let kw = if call.kwargs.is_empty() {
        Vec::new()
    } else {
        let kw_ctx = Context {
            in_keyword: true,
            ..ctx.clone()
        };
        call.kwargs
            .iter()
            .map(|(k, a)| Ok((k.clone(), kw_ctx.value(a)?)))
            .collect::<Result<Vec<_>, RenderError>>()?
    };
    let mut out = dispatch(ctx, call, &Args { pos, kw, info })?;
    let keep_ints = INT_PRODUCERS.contains(&info.name) || VALUE_PRESERVING.contains(&info.name);
    for s in &mut out {
        if !keep_ints {
            s.int_points.clear();
        }
        if s.name_is_none && s.name != "None" {
            s.name_is_none = false;
        }
    }
    Ok(out)
}

/// Functions that make Python ints in graphite-web (they set [`TimeSeries::int_points`]).
const INT_PRODUCERS: &[&str] = &[
    "countSeries",
    "identity",
    "isNonNull",
    "events",
    "transformNull",
    "aggregate",
    "diffSeries",
    "maxSeries",
    "minSeries",
    "sum",
    "sumSeries",
];

/// Functions that hand their input values on untouched (names, styles, selection, order), so
/// ints stay ints; every other function's output is taken as floats.
const VALUE_PRESERVING: &[&str] = &[
    "alias",
    "aliasByMetric",
    "aliasByNode",
    "aliasByTags",
    "aliasQuery",
    "aliasSub",
    "alpha",
    "averageAbove",
    "averageBelow",
    "cactiStyle",
    "color",
    "consolidateBy",
    "currentAbove",
    "currentBelow",
    "dashed",
    "drawAsInfinite",
    "exclude",
    "filterSeries",
    "grep",
    "group",
    "highest",
    "highestAverage",
    "highestCurrent",
    "highestMax",
    "legendValue",
    "limit",
    "lineWidth",
    "lowest",
    "lowestAverage",
    "lowestCurrent",
    "maximumAbove",
    "maximumBelow",
    "minimumAbove",
    "minimumBelow",
    "removeEmptySeries",
    "secondYAxis",
    "setXFilesFactor",
    "sortBy",
    "sortByMaxima",
    "sortByMinima",
    "sortByName",
    "sortByTotal",
    "stacked",
    "substr",
    "unique",
    "xFilesFactor",
];

/// Every function implemented, over all groups (for `/functions` and reports).
pub fn all() -> impl Iterator<Item = &'static FunctionInfo> {
    GROUPS.iter().flat_map(|(table, _)| table.iter())
}

/// The names of the functions implemented here.
pub fn implemented() -> impl Iterator<Item = &'static str> {
    all().map(|f| f.name)
}
