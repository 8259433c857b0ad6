//! go-carbon's HTTP receiver (`[receiver.http]`, port 2007 there): a POST body of plaintext
//! lines, a pickle (`Content-Type: application/python-pickle`) or a protobuf payload
//! (`application/protobuf`) goes into the cache as if it had come over the matching socket.
//! Carbon has no such receiver; it is off unless HTTP_RECEIVER_PORT (or `serve --http-port`) is
//! set.
//!
//! As go-carbon: `GET` answers 200 `OK` (a health check), other methods 400. Unlike go-carbon,
//! which refuses a plaintext body whole at its first bad line, the good lines of a body are
//! kept, as over TCP; the answer is then 400 and says how many lines were bad, so a client sees
//! the problem, and a retry of the whole body only rewrites the same points. When the cache is
//! full the request waits for room, as a TCP receiver stops reading.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use carbide_protocol::line::LineSplitter;
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};

use crate::ingest::{Ingest, now_f64};
use crate::listeners::{Took, take_frame, take_line, wait_for_space};

/// go-carbon's `max-message-size` default: 64 MiB.
pub const DEFAULT_MAX_BODY: usize = 64 << 20;

/// What the receiver needs.
pub struct HttpReceiver {
    /// Where points go.
    pub ingest: Arc<Ingest>,
    /// Woken when the cache has room again.
    pub space: Arc<Notify>,
    /// Longest plaintext line (carbon's MAX_LENGTH for lines).
    pub max_line: usize,
    /// Longest body; a longer one is refused with 413.
    pub max_body: usize,
}

/// The receiver's routes: every path, as go-carbon's handler.
pub fn router(state: Arc<HttpReceiver>) -> Router {
    let limit = state.max_body;
    Router::new()
        .fallback(receive)
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

/// Serves `listener` until `stop` changes.
pub async fn run(listener: TcpListener, state: Arc<HttpReceiver>, mut stop: watch::Receiver<bool>) {
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    let graceful = async move {
        let _ = stop.changed().await;
    };
    if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(graceful).await {
        tracing::error!(error = %e, "HTTP receiver failed");
    }
}

/// Which decoder a body goes to, by its Content-Type (parameters ignored).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Plain,
    Pickle,
    Protobuf,
}

fn format_of(headers: &HeaderMap) -> Format {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    match ct.split(';').next().unwrap_or("").trim() {
        "application/python-pickle" => Format::Pickle,
        "application/protobuf" => Format::Protobuf,
        _ => Format::Plain,
    }
}

async fn receive(
    State(st): State<Arc<HttpReceiver>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    if method == Method::GET {
        return (StatusCode::OK, "OK\n".into());
    }
    if method != Method::POST {
        return (
            StatusCode::BAD_REQUEST,
            format!("Method {method} is not supported\n"),
        );
    }
    wait_for_space(&st.ingest, &st.space).await;
    let peer = peer.to_string();
    let ingest = &st.ingest;
    let format = format_of(&headers);
    match format {
        Format::Plain => {
            let (mut lines_seen, mut points, mut bad) = (0u64, 0u64, 0u64);
            // The body is complete, so a last line without its newline is whole, not cut off.
            let owned;
            let text: &[u8] = if body.last().is_some_and(|&b| b != b'\n') {
                owned = [&body[..], b"\n"].concat();
                &owned
            } else {
                &body
            };
            let now = now_f64();
            let mut splitter = LineSplitter::new(st.max_line);
            let mut batch = ingest.batch();
            for line in splitter.split(text) {
                lines_seen += 1;
                match take_line(ingest, &peer, line, now, &mut batch) {
                    Took::Point => points += 1,
                    Took::Dropped => {}
                    Took::Bad => bad += 1,
                }
            }
            drop(batch);
            if bad > 0 {
                (
                    StatusCode::BAD_REQUEST,
                    format!("{bad} of {lines_seen} lines were not understood; {points} points were kept\n"),
                )
            } else {
                (StatusCode::OK, String::new())
            }
        }
        Format::Pickle | Format::Protobuf => {
            let mut batch = ingest.batch();
            let taken = take_frame(format == Format::Pickle, ingest, &peer, &body, &mut batch);
            drop(batch);
            match taken {
                Ok(_) => (StatusCode::OK, String::new()),
                Err(()) => (StatusCode::BAD_REQUEST, "Parse failed\n".into()),
            }
        }
    }
}
