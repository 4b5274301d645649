//! Upload and download (RFC 8620 §6.1, §6.2). WIP: waiting for `store::blob::BlobStore`.

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;

use super::AppState;
use super::response::{ResponseBody, problem};
use crate::auth::Principal;

pub(super) async fn upload(
    _state: &AppState,
    _principal: &Principal,
    _account: &str,
    _request: Request<Incoming>,
) -> Response<ResponseBody> {
    problem(StatusCode::NOT_IMPLEMENTED, "upload is not available yet")
}

pub(super) async fn download(
    _state: &AppState,
    _principal: &Principal,
    _account: &str,
    _blob: &str,
    _name: &str,
    _request: &Request<Incoming>,
) -> Response<ResponseBody> {
    problem(StatusCode::NOT_IMPLEMENTED, "download is not available yet")
}
