//! The evaluator: a parsed target over the storage, as graphite-web's `evaluateTarget`.

use carbide_query::attime::TimeZone;
use carbide_query::grammar::{Arg, Call, Expr};
use carbide_query::pytime::PyDateTime;
use carbide_query::{parse_target, template};
use carbide_storage::{Node, Storage};

use crate::RenderError;
use crate::functions;
use crate::series::TimeSeries;

/// Limits that turn a runaway request into a 4xx instead of an out-of-memory.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Most series one path expression may fetch.
    pub max_series: usize,
    /// Most points (series × values) one request may fetch.
    pub max_points: usize,
    /// Longest a request may evaluate before it is abandoned with a 503 (checked between fetches
    /// and calls, so a runaway query frees its thread instead of holding it).
    pub max_time: std::time::Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_series: 10_000,
            max_points: 50_000_000,
            max_time: std::time::Duration::from_secs(60),
        }
    }
}

/// What one request evaluates against: the store, the time range and the request's options.
#[derive(Debug, Clone)]
pub struct Context<'a> {
    /// Where series come from.
    pub storage: &'a Storage,
    /// Start of the range (epoch seconds).
    pub start: i64,
    /// End of the range.
    pub end: i64,
    /// The request's `now`.
    pub now: i64,
    /// The request's `tz` (else `TIME_ZONE`): the zone its times are read and shown in.
    pub tz: TimeZone,
    /// graphite-web's `TIME_ZONE`, which Django makes the process zone: `time.mktime` and
    /// `parseATTime` without a zone (timeSlice, linearRegression) read wall clocks in it.
    pub server_tz: TimeZone,
    /// `requestContext['startTime']` as the pytz datetime graphite-web holds (`start` with the
    /// offset it was parsed with; shifting keeps that offset).
    pub start_time: PyDateTime,
    /// `requestContext['endTime']`, likewise.
    pub end_time: PyDateTime,
    /// The request's xFilesFactor.
    pub x_files_factor: f64,
    /// `template[name]=value` overrides.
    pub templates: Vec<(String, String)>,
    /// Request limits.
    pub limits: Limits,
    /// When this request must give up (`limits.max_time` after it started); `None` = never.
    pub deadline: Option<std::time::Instant>,
    /// graphite-web's `requestContext['totalStack']`: the running totals `stacked()` keeps per
    /// stack name, shared by every target of the request (and every copy of this context).
    pub total_stack: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, Vec<f64>>>>,
    /// Other graphite-web instances whose series path expressions also fetch (CLUSTER_SERVERS);
    /// `None` for a `local=1` request.
    pub remote: Option<&'a dyn crate::remote::Remote>,
    /// What graphite-web's `prefetchData` fetched for the request: the path expressions and
    /// `seriesByTag(…)` calls in positional arguments of its targets (`extractPathExpressions`
    /// never looks into keyword arguments).
    pub prefetched: std::sync::Arc<std::collections::HashSet<String>>,
    /// Evaluating a keyword argument: graphite-web's `fetchData` answers only from the prefetched
    /// data, so a path there that no positional argument of the request names fetches nothing.
    pub in_keyword: bool,
}

/// An evaluated argument.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A series list.
    Series(Vec<TimeSeries>),
    /// `true`/`false`.
    Bool(bool),
    /// An integer literal.
    Int(i64),
    /// A float literal.
    Float(f64),
    /// A string literal.
    Str(String),
    /// `None`.
    None,
}

impl<'a> Context<'a> {
    /// Parses and evaluates one target. As graphite-web's `evaluateTarget`, it first prefetches
    /// the target's positional path expressions (see [`Context::prefetched`]).
    pub fn evaluate_target(&self, target: &str) -> Result<Vec<TimeSeries>, RenderError> {
        let expr = parse_target(target)?;
        let expanded =
            template::expand(&expr, &self.templates).map_err(|e| RenderError::BadArgument(e.to_string()))?;
        match expanded {
            Arg::Expr(e) => {
                let mut ctx = self.clone();
                ctx.in_keyword = false;
                let mut paths = Vec::new();
                positional_paths(&e, &mut paths);
                if paths.iter().any(|p| !ctx.prefetched.contains(p)) {
                    std::sync::Arc::make_mut(&mut ctx.prefetched).extend(paths);
                }
                ctx.evaluate(&e)
            }
            _ => Ok(Vec::new()),
        }
    }

    /// graphite-web's `prefetchData` over all of a request's targets: marks their positional path
    /// expressions as fetched, so a keyword argument naming one of them fetches it too (targets
    /// that do not parse are left to fail when evaluated).
    pub fn prefetch<S: AsRef<str>>(&mut self, targets: &[S]) {
        let mut paths = Vec::new();
        for t in targets {
            let Ok(expr) = parse_target(t.as_ref()) else {
                continue;
            };
            if let Ok(Arg::Expr(e)) = template::expand(&expr, &self.templates) {
                positional_paths(&e, &mut paths);
            }
        }
        std::sync::Arc::make_mut(&mut self.prefetched).extend(paths);
    }

    /// Whether graphite-web's `fetchData` finds nothing for `key` here: under a keyword argument,
    /// a path (or `seriesByTag` call) that was not prefetched.
    fn not_prefetched(&self, key: &str) -> bool {
        self.in_keyword && !self.prefetched.contains(key)
    }

    /// Fails with [`RenderError::Timeout`] once the request's deadline has passed.
    pub fn check_deadline(&self) -> Result<(), RenderError> {
        match self.deadline {
            Some(d) if std::time::Instant::now() > d => Err(RenderError::Timeout(format!(
                "the request took longer than {:?} and was abandoned",
                self.limits.max_time
            ))),
            _ => Ok(()),
        }
    }

    /// Evaluates an expression to a series list.
    pub fn evaluate(&self, expr: &Expr) -> Result<Vec<TimeSeries>, RenderError> {
        self.check_deadline()?;
        match expr {
            Expr::Path(p) if self.not_prefetched(p) => Ok(Vec::new()),
            Expr::Call(c) if c.name == "seriesByTag" && self.not_prefetched(&c.raw) => Ok(Vec::new()),
            Expr::Path(p) => self.fetch(p),
            Expr::Call(c) => functions::call(self, c),
            Expr::Template(_) => Err(RenderError::BadArgument(
                "nested template() is not supported".into(),
            )),
        }
    }

    /// Evaluates an argument.
    pub fn value(&self, arg: &Arg) -> Result<Value, RenderError> {
        Ok(match arg {
            Arg::Expr(e) => Value::Series(self.evaluate(e)?),
            Arg::Bool(b) => Value::Bool(*b),
            Arg::Int(i) => Value::Int(*i),
            Arg::Float(f) => Value::Float(*f),
            Arg::Str(s) => Value::Str(s.clone()),
            Arg::None => Value::None,
        })
    }

    /// A copy of this context over another time range (timeShift, movingAverage): graphite-web's
    /// `startTime + timedelta(…)`, which keeps the original UTC offsets.
    pub fn with_range(&self, start: i64, end: i64) -> Context<'_> {
        self.with_times(
            self.start_time.plus(start - self.start),
            self.end_time.plus(end - self.end),
        )
    }

    /// A copy of this context over another range given as datetimes (linearRegression's own
    /// `startSourceAt`, alignments built with `datetime(…, tzinfo=s.tzinfo)`).
    pub fn with_times(&self, start_time: PyDateTime, end_time: PyDateTime) -> Context<'_> {
        Context {
            start: start_time.instant,
            end: end_time.instant,
            start_time,
            end_time,
            ..self.clone()
        }
    }

    /// A context over `start..end` read in `tz`, with graphite-web's defaults otherwise (no
    /// templates, xFilesFactor 0, no deadline); `server_tz` is `TIME_ZONE`.
    pub fn new(
        storage: &'a Storage,
        (start, end, now): (i64, i64, i64),
        tz: TimeZone,
        server_tz: TimeZone,
        limits: Limits,
    ) -> Context<'a> {
        Context {
            storage,
            start,
            end,
            now,
            start_time: PyDateTime::localized(start, &tz),
            end_time: PyDateTime::localized(end, &tz),
            tz,
            server_tz,
            x_files_factor: 0.0,
            templates: Vec::new(),
            limits,
            deadline: None,
            total_stack: Default::default(),
            remote: None,
            prefetched: Default::default(),
            in_keyword: false,
        }
    }

    /// `time.mktime(requestContext['startTime'].timetuple())` (graphite's `timestamp()`): the start's
    /// wall clock read in `TIME_ZONE`.
    pub fn start_timestamp(&self) -> i64 {
        self.start_time.mktime(&self.server_tz)
    }

    /// `timestamp(requestContext['endTime'])`.
    pub fn end_timestamp(&self) -> i64 {
        self.end_time.mktime(&self.server_tz)
    }

    /// Fetches every leaf matching a path expression, sorted by name (graphite-web's `fetchData`).
    /// Many leaves are read on several threads at once: reading whisper files is most of a wide
    /// render's time, and one thread left the other cores idle.
    pub fn fetch(&self, pattern: &str) -> Result<Vec<TimeSeries>, RenderError> {
        let nodes = self.storage.find(pattern)?;
        let leaves: Vec<Node> = nodes.into_iter().filter(|n| n.is_leaf).collect();
        if leaves.len() > self.limits.max_series {
            return Err(too_many_series(pattern, leaves.len(), self.limits.max_series));
        }
        let threads = std::thread::available_parallelism()
            .map_or(1, std::num::NonZeroUsize::get)
            .min(MAX_FETCH_THREADS);
        let per_thread = leaves.len().div_ceil(threads).max(MIN_LEAVES_PER_THREAD);
        let chunks: Vec<&[Node]> = leaves.chunks(per_thread).collect();
        let parts: Vec<Result<Vec<TimeSeries>, RenderError>> = if chunks.len() <= 1 {
            chunks.iter().map(|c| self.fetch_leaves(pattern, c)).collect()
        } else {
            std::thread::scope(|scope| {
                let handles: Vec<_> = chunks
                    .iter()
                    .map(|c| scope.spawn(move || self.fetch_leaves(pattern, c)))
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                    .collect()
            })
        };
        let mut out = Vec::with_capacity(leaves.len());
        let mut points = 0usize;
        for part in parts {
            for s in part? {
                points += s.values.len();
                if points > self.limits.max_points {
                    return Err(too_many_points(pattern, self.limits.max_points));
                }
                out.push(s);
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        self.merge_cluster(pattern, &mut out, points)?;
        Ok(out)
    }

    /// Adds what the cluster servers answer for `pattern` (a path expression, or a seriesByTag
    /// call as written) to the local series `out`, which hold `points` points, within the point
    /// and series limits: graphite-web's RemoteFinders, merged by name.
    pub(crate) fn merge_cluster(
        &self,
        pattern: &str,
        out: &mut Vec<TimeSeries>,
        points: usize,
    ) -> Result<(), RenderError> {
        let Some(remote) = self.remote else {
            return Ok(());
        };
        let answers = remote.fetch(pattern, self.start, self.end, self.now);
        let points = points + answers.iter().map(|r| r.values.len()).sum::<usize>();
        if points > self.limits.max_points {
            return Err(too_many_points(pattern, self.limits.max_points));
        }
        crate::remote::merge_remote(out, answers, pattern, self.x_files_factor);
        if out.len() > self.limits.max_series {
            return Err(too_many_series(pattern, out.len(), self.limits.max_series));
        }
        Ok(())
    }

    /// Fetches `leaves` in order, within the deadline and the point limit.
    fn fetch_leaves(&self, pattern: &str, leaves: &[Node]) -> Result<Vec<TimeSeries>, RenderError> {
        let mut out = Vec::with_capacity(leaves.len());
        let mut points = 0usize;
        for leaf in leaves {
            self.check_deadline()?;
            let Some(f) = self.storage.fetch(&leaf.path, self.start, self.end, self.now)? else {
                continue;
            };
            points += f.values.len();
            if points > self.limits.max_points {
                return Err(too_many_points(pattern, self.limits.max_points));
            }
            let mut s = TimeSeries::new(&f.name, f.start, f.end, f.step, f.values);
            s.path_expression = pattern.to_string();
            s.x_files_factor = self.x_files_factor;
            out.push(s);
        }
        Ok(out)
    }
}

/// At most this many threads read one path expression's files.
const MAX_FETCH_THREADS: usize = 4;
/// A thread is worth starting for at least this many leaves.
const MIN_LEAVES_PER_THREAD: usize = 64;

/// The refusal of a fetch beyond the point limit.
pub(crate) fn too_many_points(pattern: &str, max: usize) -> RenderError {
    RenderError::Limit(format!("{pattern} fetches more than {max} points"))
}

/// The refusal of a path expression matching more series than the limit.
pub(crate) fn too_many_series(pattern: &str, n: usize, max: usize) -> RenderError {
    RenderError::Limit(format!(
        "{pattern} matches {n} series, more than the limit of {max}"
    ))
}

/// graphite-web's `extractPathExpressions` for one target: its path expressions and
/// `seriesByTag(…)` calls (by their source text), through positional arguments only.
fn positional_paths(expr: &Expr, out: &mut Vec<String>) {
    match expr {
        Expr::Path(p) => out.push(p.clone()),
        Expr::Call(c) if c.name == "seriesByTag" => out.push(c.raw.clone()),
        Expr::Call(c) => {
            for a in &c.args {
                if let Arg::Expr(e) = a {
                    positional_paths(e, out);
                }
            }
        }
        Expr::Template(_) => {}
    }
}

/// The first positional argument of a call, for functions that re-evaluate it over another range.
pub fn first_arg(call: &Call) -> Option<&Expr> {
    match call.args.first() {
        Some(Arg::Expr(e)) => Some(e),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_past_its_deadline_is_abandoned() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(dir.path()).unwrap();
        let mut ctx = Context::new(
            &storage,
            (0, 60, 60),
            TimeZone::UTC,
            TimeZone::UTC,
            Limits::default(),
        );
        assert!(ctx.evaluate_target("sumSeries(a.*)").is_ok());
        ctx.deadline = std::time::Instant::now().checked_sub(std::time::Duration::from_millis(1));
        assert!(matches!(
            ctx.evaluate_target("sumSeries(a.*)"),
            Err(RenderError::Timeout(_))
        ));
    }
}
