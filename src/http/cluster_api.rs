//! API requests on a cluster run on the node that owns the account they write: the caller's
//! own account, or — when every call of the request names one account shared with the caller
//! (RFC 9670) — that account, so a grantee's writes pass its owner's fence. A request mixing
//! accounts (Email/copy out of a shared account into one's own) runs on the caller's owner:
//! it writes there and only reads the other account, which any node may.

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use serde_json::Value;

use super::response::ResponseBody;
use super::{AppState, ClusterLink, Placement, api_body, forward, read_api_body};
use crate::auth::Principal;
use crate::jmap::types::AccountId;

/// The one account every method call of `body` names (`accountId`, `fromAccountId`), if
/// there is exactly one; `None` for anything else (the engine answers malformed requests).
fn named_account(body: &[u8]) -> Option<u32> {
    let request: Value = serde_json::from_slice(body).ok()?;
    let mut named: Option<u32> = None;
    for call in request.get("methodCalls")?.as_array()? {
        let arguments = call.get(1)?.as_object()?;
        for member in ["accountId", "fromAccountId"] {
            let Some(text) = arguments.get(member).and_then(Value::as_str) else {
                continue;
            };
            let account = AccountId::parse(text).ok()?.number();
            match named {
                Some(other) if other != account => return None,
                _ => named = Some(account),
            }
        }
    }
    named
}

/// Whose owner runs the request: a shared account it alone names, else the caller's own.
async fn route_account(state: &AppState, principal: &Principal, body: &[u8]) -> u32 {
    let Some(named) = named_account(body).filter(|named| *named != principal.account_id) else {
        return principal.account_id;
    };
    match state.engine.access(principal).await {
        Ok((_, shared)) if shared.iter().any(|account| account.account_id == named) => named,
        _ => principal.account_id,
    }
}

pub(super) async fn serve(
    state: &AppState,
    cluster: &ClusterLink,
    principal: &Principal,
    forwarded: bool,
    request: Request<Incoming>,
) -> Response<ResponseBody> {
    // The request limits are checked here, before anything is forwarded.
    let (parts, body) = request.into_parts();
    let body: Bytes = match read_api_body(state, &parts.headers, body).await {
        Ok(body) => body,
        Err(refusal) => return refusal,
    };
    let account = route_account(state, principal, &body).await;
    match cluster.node.route(account).await {
        Placement::Local => {
            let session_state = forwarded
                .then(|| forward::forwarded_session_state(&parts.headers))
                .flatten();
            api_body(state, principal, session_state, body).await
        }
        Placement::Forward { node, url } if !forwarded => {
            let session_state = match state.engine.session_state(principal).await {
                Ok(session_state) => session_state,
                Err(error) => return forward::unavailable(&error.to_string()),
            };
            let body = http_body_util::Full::new(body)
                .map_err(|never| match never {})
                .boxed_unsync();
            cluster
                .forwarder
                .forward_parts(
                    &cluster.node,
                    node,
                    &url,
                    principal,
                    &session_state,
                    parts,
                    body,
                )
                .await
        }
        Placement::Forward { .. } => {
            forward::unavailable("the account moved to another node; retry")
        }
        Placement::Unavailable(detail) => forward::unavailable(&detail),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_named_account_routes_mixed_ones_do_not() {
        let one = br#"{"methodCalls": [["Mailbox/get", {"accountId": "a7"}, "c"],
            ["Email/set", {"accountId": "a7"}, "d"], ["Core/echo", {}, "e"]]}"#;
        assert_eq!(named_account(one), Some(7));
        let mixed = br#"{"methodCalls": [["Email/copy", {"accountId": "a1", "fromAccountId": "a7"}, "c"]]}"#;
        assert_eq!(named_account(mixed), None);
        assert_eq!(named_account(b"not json"), None);
        assert_eq!(
            named_account(br#"{"methodCalls": [["Core/echo", {}, "c"]]}"#),
            None
        );
    }
}
