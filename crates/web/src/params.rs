//! Request parameters as Django's `request.GET.copy(); update(request.POST)` sees them: query
//! string first, then a form-encoded body, repeated keys kept in order.

use axum::http::{HeaderMap, Method, Uri, header};

/// The merged parameters of one request.
#[derive(Debug, Clone, Default)]
pub struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    /// Reads the query string and, for a form-encoded POST, the body.
    pub fn from_request(method: &Method, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Params {
        let mut pairs: Vec<(String, String)> = uri
            .query()
            .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
            .unwrap_or_default();
        let is_form = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_none_or(|ct| ct.starts_with("application/x-www-form-urlencoded"));
        if method == Method::POST && is_form && !body.is_empty() {
            pairs.extend(form_urlencoded::parse(body).into_owned());
        }
        Params { pairs }
    }

    /// Builds parameters from pairs (tests).
    pub fn from_pairs(pairs: Vec<(String, String)>) -> Params {
        Params { pairs }
    }

    /// The last value of `key` (Django's `QueryDict.get`).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Whether `key` was given at all.
    pub fn contains(&self, key: &str) -> bool {
        self.pairs.iter().any(|(k, _)| k == key)
    }

    /// Every value of `key`, in order (`getlist`).
    pub fn get_list(&self, key: &str) -> Vec<String> {
        self.pairs
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// All pairs in order.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_then_form_last_wins_lists_kept() {
        let uri: Uri = "/render?target=a&format=csv".parse().unwrap();
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            "application/x-www-form-urlencoded".parse().unwrap(),
        );
        let p = Params::from_request(&Method::POST, &uri, &h, b"target=b%28c%29&format=json");
        assert_eq!(p.get("format"), Some("json"));
        assert_eq!(p.get_list("target"), vec!["a", "b(c)"]);
        assert!(!p.contains("jsonp"));
    }
}
