//! graphite-web's tagged series functions: seriesByTag (Special), groupByTags (Combine) and
//! aliasByTags (Alias).
//!
//! `seriesByTag` asks the store's tag index ([`carbide_storage::TagIndex`]) which series match, with
//! graphite-web's local tag database rules, and reads each from its `_tagged/` whisper file: the
//! series is named by its normalised path and its `pathExpression` is the call as written, as
//! graphite-web's `fetchData(requestContext, tokens.call.raw)` leaves it. With cluster servers
//! the call is also rendered on each of them and their series merged in, as graphite-web's
//! `RemoteFinder` (a finder with tags) does.

use carbide_query::grammar::{Arg, Call};

use super::base::{agg_key, aggregate};
use super::{Args, GROUPS};
use crate::RenderError;
use crate::catalog::{FunctionInfo, SL, multi, req};
use crate::eval::{Context, Value, too_many_points, too_many_series};
use crate::series::{TimeSeries, set_tag};

/// The functions of this group, as `/functions` lists them.
pub const FUNCTIONS: &[FunctionInfo] = &[
    FunctionInfo {
        name: "seriesByTag",
        group: "Special",
        params: &[multi("tagExpressions", "string", true)],
    },
    FunctionInfo {
        name: "groupByTags",
        group: "Combine",
        params: &[SL, req("callback", "aggOrSeriesFunc"), multi("tags", "tag", true)],
    },
    FunctionInfo {
        name: "aliasByTags",
        group: "Alias",
        params: &[SL, multi("tags", "nodeOrTag", true)],
    },
];

/// Runs one function of [`FUNCTIONS`].
pub(crate) fn dispatch(ctx: &Context<'_>, call: &Call, a: &Args) -> Result<Vec<TimeSeries>, RenderError> {
    match a.info.name {
        "seriesByTag" => series_by_tag(ctx, call),
        "groupByTags" => group_by_tags(ctx, call, a),
        "aliasByTags" => {
            let tags: Vec<Value> = (1..a.pos.len()).filter_map(|i| a.get(i).cloned()).collect();
            let mut out = a.series(0)?;
            for s in &mut out {
                s.name = agg_key(s, &tags);
            }
            Ok(out)
        }
        other => Err(RenderError::UnknownFunction(other.to_string())),
    }
}

/// The series matching the call's string arguments, read from their whisper files, sorted by name.
fn series_by_tag(ctx: &Context<'_>, call: &Call) -> Result<Vec<TimeSeries>, RenderError> {
    // graphite-web reads only the string arguments of the call.
    let exprs: Vec<&str> = call
        .args
        .iter()
        .filter_map(|a| match a {
            Arg::Str(s) => Some(s.as_str()),
            _ => None,
        })
        .collect();
    let paths = ctx
        .storage
        .tags()
        .find_series(&exprs)
        .map_err(|e| RenderError::BadArgument(e.to_string()))?;
    let paths: Vec<String> = paths
        .into_iter()
        .filter(|p| ctx.storage.path_of(p).is_file())
        .collect();
    if paths.len() > ctx.limits.max_series {
        return Err(too_many_series(&call.raw, paths.len(), ctx.limits.max_series));
    }
    let mut out = Vec::with_capacity(paths.len());
    let mut points = 0usize;
    for path in paths {
        let Some(f) = ctx.storage.fetch(&path, ctx.start, ctx.end, ctx.now)? else {
            continue;
        };
        points += f.values.len();
        if points > ctx.limits.max_points {
            return Err(too_many_points(&call.raw, ctx.limits.max_points));
        }
        let mut s = TimeSeries::new(&f.name, f.start, f.end, f.step, f.values);
        s.path_expression = call.raw.clone();
        s.x_files_factor = ctx.x_files_factor;
        out.push(s);
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    // graphite-web's RemoteFinder has `tags = True`: Store.fetch hands it the call as written,
    // which it renders on every cluster server (`/render/?target=seriesByTag(…)`), each asking its
    // own tag database; the answers merge with the local ones by name.
    ctx.merge_cluster(&call.raw, &mut out, points)?;
    Ok(out)
}

fn tag_of<'a>(s: &'a TimeSeries, tag: &str) -> &'a str {
    s.tags
        .iter()
        .find(|(k, _)| k == tag)
        .map(|(_, v)| v.as_str())
        .unwrap_or("")
}

/// graphite-web's `groupByTags`: one series per combination of the tags' values, named
/// `name;tag=value;…` and aggregated with the callback (a series function or an aggregate name).
fn group_by_tags(ctx: &Context<'_>, call: &Call, a: &Args) -> Result<Vec<TimeSeries>, RenderError> {
    let list = a.series(0)?;
    let callback = a.required_string(1)?;
    let mut tags: Vec<String> = Vec::new();
    for i in 2..a.pos.len().max(3) {
        match a.get(i) {
            Some(Value::Str(t)) => tags.push(t.clone()),
            Some(Value::Int(n)) => tags.push(n.to_string()),
            _ => {}
        }
    }
    if tags.is_empty() {
        return Err(RenderError::BadArgument(
            "groupByTags(): no tags specified".into(),
        ));
    }
    let by_name = tags.iter().any(|t| t == "name");
    let common_name = if by_name {
        String::new()
    } else {
        let names: std::collections::BTreeSet<&str> = list.iter().map(|s| tag_of(s, "name")).collect();
        match names.iter().next() {
            Some(n) if names.len() == 1 => (*n).to_string(),
            _ => callback.clone(),
        }
    };
    let mut keys: Vec<String> = Vec::new();
    let mut groups: Vec<Vec<TimeSeries>> = Vec::new();
    for s in list {
        let mut parts: Vec<String> = tags
            .iter()
            .filter(|t| !by_name || *t != "name")
            .map(|t| format!("{t}={}", tag_of(&s, t)))
            .collect();
        parts.sort();
        let head = if by_name {
            tag_of(&s, "name").to_string()
        } else {
            common_name.clone()
        };
        let mut key = head;
        for p in parts {
            key.push(';');
            key.push_str(&p);
        }
        match keys.iter().position(|k| *k == key) {
            Some(i) => groups[i].push(s),
            None => {
                keys.push(key);
                groups.push(vec![s]);
            }
        }
    }
    let mut out = Vec::with_capacity(keys.len());
    for (key, group) in keys.into_iter().zip(groups) {
        let result = match series_function(&callback) {
            Some(info_dispatch) => {
                let (info, run) = info_dispatch;
                let args = Args {
                    pos: vec![Value::Series(group)],
                    kw: Vec::new(),
                    info,
                };
                run(ctx, call, &args)?
            }
            None => aggregate(ctx, group, &callback)?,
        };
        let Some(mut s) = result.into_iter().next() else {
            return Err(RenderError::BadArgument(format!(
                "groupByTags(): {callback} returned no series for {key}"
            )));
        };
        s.name = key.clone();
        s.path_expression = key.clone();
        // graphite-web parses the key as a tagged name and fails (a 500 there) when a series
        // lacks one of the tags, since `tag=` has an empty value.
        s.tags = parse_key_tags(&key).ok_or_else(|| {
            RenderError::BadArgument(format!(
                "groupByTags(): cannot parse {key:?} as a tagged name (a series lacks one of the tags)"
            ))
        })?;
        out.push(s);
    }
    Ok(out)
}

/// A function callable with one series list, looked up as graphite-web's `SeriesFunctions[name]`.
fn series_function(name: &str) -> Option<(&'static FunctionInfo, super::Dispatch)> {
    GROUPS.iter().find_map(|(table, run)| {
        table
            .iter()
            .find(|f| f.name == name && f.params.first().is_some_and(|p| p.kind == "seriesList"))
            .map(|f| (f, *run))
    })
}

/// `TaggedSeries.parse(key).tags`: the key's `tag=value` pieces in order, then `name`; `None`
/// when the key does not parse (an empty value, say).
fn parse_key_tags(key: &str) -> Option<Vec<(String, String)>> {
    let mut parts = key.split(';');
    let name = parts.next().unwrap_or("");
    let mut tags: Vec<(String, String)> = Vec::new();
    for p in parts {
        match p.split_once('=') {
            Some((t, v)) if !t.is_empty() && !v.is_empty() && !v.starts_with('~') => {
                set_tag(&mut tags, t, v.to_string());
            }
            _ => return None,
        }
    }
    let sanitized = name.trim_start_matches('~');
    if sanitized.is_empty() {
        return None;
    }
    set_tag(&mut tags, "name", sanitized.to_string());
    Some(tags)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_tags_parse_like_tagged_series() {
        assert_eq!(
            parse_key_tags("cpu;dc=a;host=web1"),
            Some(vec![
                ("dc".to_string(), "a".to_string()),
                ("host".to_string(), "web1".to_string()),
                ("name".to_string(), "cpu".to_string())
            ])
        );
        assert_eq!(parse_key_tags("sum;dc="), None);
    }
}
