//! Requests for an account owned by another node are forwarded to that node (`cluster`).
//!
//! What is forwarded and what is served where it arrives:
//! - API requests (HTTP and the WebSocket's `Request` messages) and uploads run on the
//!   account's owner: only the owner may commit for it (the store's fence refuses everyone
//!   else), and its search index is the one that knows the account.
//! - Session, downloads, EventSource and WebSocket push are served where they arrive. That is
//!   provably safe: the session is derived from the directory; blobs are immutable and
//!   content-addressed, and whether the account may read one is a consistent read of the
//!   store; push comes from the store's watch on the account version, which fires on every
//!   node for a commit on any node.
//!
//! The internal channel: the forwarding node names the already-authenticated principal in
//! [`FORWARDED_PRINCIPAL`] with a proof derived from the cluster secret
//! ([`FORWARDED_AUTH`]); the owner trusts it instead of checking the password again, and
//! never forwards such a request a second time (an ownership change in flight is answered
//! `503` with `Retry-After`, and the client's retry finds the new owner).

use std::time::Duration;

use bytes::Bytes;
use http::header::{CONNECTION, HOST, HeaderName, HeaderValue, RETRY_AFTER, TRANSFER_ENCODING};
use http::{Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::auth::Principal;
use crate::cluster::{ClusterNode, FORWARDED_AUTH, FORWARDED_PRINCIPAL, FORWARDED_SESSION_STATE};
use crate::store::ownership::NodeId;

use super::response::{BoxError, ResponseBody, problem};

pub type ForwardBody = http_body_util::combinators::UnsyncBoxBody<Bytes, BoxError>;

/// The node-to-node HTTP client (pooled HTTP/1.1 keep-alive connections).
pub struct Forwarder {
    client: Client<HttpConnector, ForwardBody>,
    timeout: Duration,
}

impl Forwarder {
    pub fn new(timeout: Duration) -> Forwarder {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(2)));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(64)
            .build(connector);
        Forwarder { client, timeout }
    }

    /// Forwards `request` (already authenticated as `principal`) to the owner at `base_url`
    /// and streams its answer back.
    pub async fn forward(
        &self,
        cluster: &ClusterNode,
        owner: NodeId,
        base_url: &str,
        principal: &Principal,
        session_state: &str,
        request: Request<Incoming>,
    ) -> Response<ResponseBody> {
        let (parts, body) = request.into_parts();
        let body = body
            .map_err(|error| Box::new(error) as BoxError)
            .boxed_unsync();
        self.forward_parts(
            cluster,
            owner,
            base_url,
            principal,
            session_state,
            parts,
            body,
        )
        .await
    }

    /// Forwards a request whose body this node already read (an API request, checked against
    /// `maxSizeRequest` here, so the owner never refuses it half-way through the stream).
    #[allow(clippy::too_many_arguments)]
    pub async fn forward_parts(
        &self,
        cluster: &ClusterNode,
        owner: NodeId,
        base_url: &str,
        principal: &Principal,
        session_state: &str,
        parts: http::request::Parts,
        body: ForwardBody,
    ) -> Response<ResponseBody> {
        let path = parts
            .uri
            .path_and_query()
            .map_or("/", |path| path.as_str())
            .to_owned();
        let Ok(uri) = format!("{}{path}", base_url.trim_end_matches('/')).parse::<Uri>() else {
            return unavailable("the owner's URL is malformed");
        };
        let mut outgoing = Request::builder().method(parts.method).uri(uri);
        for (name, value) in &parts.headers {
            if !is_hop_by_hop(name) && name != HOST {
                outgoing = outgoing.header(name, value);
            }
        }
        self.send(cluster, owner, principal, session_state, outgoing, body)
            .await
    }

    /// Sends one API request body (a WebSocket `Request` message) to the owner; returns the
    /// owner's JSON answer, or a problem to answer with.
    pub async fn forward_api(
        &self,
        cluster: &ClusterNode,
        owner: NodeId,
        base_url: &str,
        principal: &Principal,
        session_state: &str,
        body: Bytes,
    ) -> Result<Bytes, (StatusCode, String)> {
        let uri = format!("{}/jmap/api", base_url.trim_end_matches('/'));
        let outgoing = Request::builder()
            .method(http::Method::POST)
            .uri(uri)
            .header(http::header::CONTENT_TYPE, "application/json");
        let body = Full::new(body)
            .map_err(|never| match never {})
            .boxed_unsync();
        let response = self
            .send(cluster, owner, principal, session_state, outgoing, body)
            .await;
        let status = response.status();
        let bytes = tokio::time::timeout(self.timeout, response.into_body().collect())
            .await
            .map_err(|_| {
                (
                    StatusCode::GATEWAY_TIMEOUT,
                    "the owner did not answer".to_owned(),
                )
            })?
            .map_err(|error| (StatusCode::BAD_GATEWAY, error.to_string()))?
            .to_bytes();
        if status.is_success() {
            Ok(bytes)
        } else {
            Err((status, String::from_utf8_lossy(&bytes).into_owned()))
        }
    }

    async fn send(
        &self,
        cluster: &ClusterNode,
        owner: NodeId,
        principal: &Principal,
        session_state: &str,
        outgoing: http::request::Builder,
        body: ForwardBody,
    ) -> Response<ResponseBody> {
        let proof = cluster.forwarding_proof(principal.account_id, &principal.email);
        let Ok(named) =
            HeaderValue::from_str(&format!("{} {}", principal.account_id, principal.email))
        else {
            return unavailable("the principal cannot be forwarded");
        };
        let Ok(request) = outgoing
            .header(FORWARDED_PRINCIPAL, named)
            .header(FORWARDED_AUTH, proof)
            .header(FORWARDED_SESSION_STATE, session_state)
            .body(body)
        else {
            return unavailable("the request cannot be forwarded");
        };
        let answered = tokio::select! {
            answered = tokio::time::timeout(self.timeout, self.client.request(request)) => answered,
            () = cluster.expired(owner) => {
                return unavailable("the account's node stopped answering; retry shortly");
            }
        };
        match answered {
            Ok(Ok(response)) => {
                let (mut parts, body) = response.into_parts();
                for name in [CONNECTION, TRANSFER_ENCODING] {
                    parts.headers.remove(name);
                }
                let body = body
                    .map_err(|error| Box::new(error) as BoxError)
                    .boxed_unsync();
                Response::from_parts(parts, body)
            }
            Ok(Err(error)) => {
                tracing::debug!(%error, "forwarding to the owner failed");
                unavailable("the account's node cannot be reached; retry shortly")
            }
            Err(_) => unavailable("the account's node did not answer in time"),
        }
    }
}

/// `503` with `Retry-After: 1`: an ownership change is in flight (RFC 9110 §15.6.4).
pub fn unavailable(detail: &str) -> Response<ResponseBody> {
    let mut response = problem(StatusCode::SERVICE_UNAVAILABLE, detail);
    response
        .headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

fn is_hop_by_hop(name: &HeaderName) -> bool {
    // RFC 9110 §7.6.1, plus the internal headers a client must not set itself.
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | FORWARDED_PRINCIPAL
            | FORWARDED_AUTH
            | FORWARDED_SESSION_STATE
    )
}

/// The session state a vouched-for forwarded request asks its answer to carry.
pub fn forwarded_session_state(headers: &http::HeaderMap) -> Option<String> {
    headers
        .get(FORWARDED_SESSION_STATE)
        .and_then(|value| value.to_str().ok())
        .filter(|state| state.len() <= 64)
        .map(str::to_owned)
}

/// The principal a forwarding node vouches for, if its proof is right.
pub fn forwarded_principal(
    cluster: &ClusterNode,
    headers: &http::HeaderMap,
) -> Option<Result<Principal, ()>> {
    let named = headers.get(FORWARDED_PRINCIPAL)?;
    let verified = (|| {
        let named = named.to_str().ok()?;
        let proof = headers.get(FORWARDED_AUTH)?.to_str().ok()?;
        let (account, email) = named.split_once(' ')?;
        let account_id = account.parse().ok()?;
        cluster
            .verify_forwarding_proof(account_id, email, proof)
            .then(|| Principal {
                account_id,
                email: email.to_owned(),
            })
    })();
    Some(verified.ok_or(()))
}
