//! Response bodies and builders. Every error leaves as RFC 7807 problem JSON
//! (`application/problem+json`); JMAP request-level errors use the engine's
//! [`ProblemDetails`] with their RFC 8620 §3.6.1 `type`, everything else `about:blank`.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{Response, StatusCode};
use http_body::{Frame, SizeHint};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full};
use serde_json::{Value, json};

use crate::auth::AuthError;
use crate::jmap::budget::Reservation;
use crate::jmap::{ApiResponse, ProblemDetails};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// The body of every response: buffered JSON or a streamed download.
pub type ResponseBody = UnsyncBoxBody<Bytes, BoxError>;

pub const JSON: &str = "application/json";
pub const PROBLEM_JSON: &str = "application/problem+json";

pub fn full_body(bytes: impl Into<Bytes>) -> ResponseBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

pub fn empty_body() -> ResponseBody {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

fn with_body(
    status: StatusCode,
    content_type: &'static str,
    body: Vec<u8>,
) -> Response<ResponseBody> {
    let mut response = Response::new(full_body(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

pub fn json_response(status: StatusCode, value: &Value) -> Response<ResponseBody> {
    match serde_json::to_vec(value) {
        Ok(body) => with_body(status, JSON, body),
        Err(error) => problem(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("cannot serialize the response: {error}"),
        ),
    }
}

/// An API Response object (RFC 8620 §3.4) sent as the engine's pieces, without joining them
/// into one buffer; the response budget bytes they hold are given back as they are sent.
pub fn api_response(response: ApiResponse) -> Response<ResponseBody> {
    let (chunks, reservation) = response.into_chunks(&[]);
    let remaining = chunks.iter().map(|chunk| chunk.len() as u64).sum();
    let body = ChunksBody {
        chunks: chunks.into(),
        remaining,
        total: remaining,
        reservation,
    };
    let mut response = Response::new(body.boxed_unsync());
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(JSON));
    response
}

struct ChunksBody {
    chunks: VecDeque<Bytes>,
    remaining: u64,
    total: u64,
    reservation: Reservation,
}

impl Drop for ChunksBody {
    fn drop(&mut self) {
        // Sent (or abandoned): a large response's memory goes back to the system.
        self.chunks.clear();
        crate::jmap::budget::return_freed_memory(self.total);
    }
}

impl http_body::Body for ChunksBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        _context: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        match this.chunks.pop_front() {
            Some(chunk) => {
                let length = chunk.len() as u64;
                this.remaining = this.remaining.saturating_sub(length);
                this.reservation.release(length);
                Poll::Ready(Some(Ok(Frame::data(chunk))))
            }
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.chunks.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

pub fn empty_response(status: StatusCode) -> Response<ResponseBody> {
    let mut response = Response::new(empty_body());
    *response.status_mut() = status;
    response
}

/// An `about:blank` problem (RFC 7807 §4.2): the title is the status phrase.
pub fn problem(status: StatusCode, detail: &str) -> Response<ResponseBody> {
    let body = json!({
        "type": "about:blank",
        "title": status.canonical_reason().unwrap_or("Error"),
        "status": status.as_u16(),
        "detail": detail,
    });
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    with_body(status, PROBLEM_JSON, bytes)
}

/// A problem (RFC 7807) with the given members (`type`, `status`, `detail`).
pub fn problem_with(status: StatusCode, members: &Value) -> Response<ResponseBody> {
    let bytes = serde_json::to_vec(members).unwrap_or_default();
    with_body(status, PROBLEM_JSON, bytes)
}

/// A JMAP problem; the status is the problem's own.
pub fn jmap_problem(details: &ProblemDetails) -> Response<ResponseBody> {
    let status = StatusCode::from_u16(details.status).unwrap_or(StatusCode::BAD_REQUEST);
    let bytes = serde_json::to_vec(details).unwrap_or_default();
    with_body(status, PROBLEM_JSON, bytes)
}

/// RFC 8620 §3.6.1 `limit` problem naming `limit_name`, with an HTTP status that says what
/// happened (413 for sizes, 429 for concurrency).
pub fn limit_problem(status: StatusCode, limit_name: &str, detail: &str) -> Response<ResponseBody> {
    let details = ProblemDetails {
        status: status.as_u16(),
        ..ProblemDetails::limit(limit_name, detail)
    };
    jmap_problem(&details)
}

/// 401 with the challenge, 429 with `Retry-After`, or 503.
pub fn auth_problem(error: &AuthError) -> Response<ResponseBody> {
    match error {
        AuthError::Missing | AuthError::Invalid => {
            let mut response = problem(StatusCode::UNAUTHORIZED, &error.to_string());
            // RFC 9110 §11.6.1: a 401 carries at least one challenge.
            response.headers_mut().insert(
                WWW_AUTHENTICATE,
                HeaderValue::from_static(crate::auth::WWW_AUTHENTICATE),
            );
            response
        }
        AuthError::RateLimited { retry_after, .. } => {
            let mut response = problem(StatusCode::TOO_MANY_REQUESTS, &error.to_string());
            let seconds = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(seconds.max(1)));
            response
        }
        AuthError::Unavailable(_) => {
            tracing::error!(%error, "authentication failed on the directory");
            problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "the account directory is unavailable; retry later",
            )
        }
    }
}
