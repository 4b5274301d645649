//! CORS (Fetch standard, "CORS protocol") for browser JMAP clients.
//!
//! JMAP authenticates with the `Authorization` header, never cookies, so by default any
//! origin may call the API (`*`): a browser never attaches credentials to such a request on
//! its own. Deployments that want to restrict origins, or to allow credentialed requests,
//! list exact origins in `[cors]`.

use http::header::{
    ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE, ALLOW,
    HeaderMap, HeaderValue, VARY,
};
use http::{Response, StatusCode};

use super::response::{ResponseBody, empty_response, problem};
use crate::config::CorsConfig;

/// Request headers a JMAP web client needs besides the CORS-safelisted ones.
const ALLOWED_HEADERS: &str = "Authorization, Content-Type, Accept, Range, If-None-Match, \
                               If-Modified-Since, Last-Event-ID, Cache-Control";
/// Response headers scripts may read besides the safelisted ones.
const EXPOSED_HEADERS: &str =
    "Content-Disposition, Content-Range, Accept-Ranges, ETag, Retry-After, WWW-Authenticate";

pub struct Cors {
    any_origin: bool,
    origins: Vec<String>,
    allow_credentials: bool,
    max_age: HeaderValue,
}

impl Cors {
    pub fn new(config: &CorsConfig) -> Cors {
        Cors {
            any_origin: config.allowed_origins.iter().any(|origin| origin == "*"),
            origins: config
                .allowed_origins
                .iter()
                .filter(|origin| *origin != "*")
                .map(|origin| origin.trim_end_matches('/').to_ascii_lowercase())
                .collect(),
            allow_credentials: config.allow_credentials,
            max_age: HeaderValue::from(config.max_age_seconds),
        }
    }

    /// The `Access-Control-Allow-Origin` value for `origin`, if it is allowed.
    fn allow_origin(&self, origin: &HeaderValue) -> Option<HeaderValue> {
        if self.any_origin && !self.allow_credentials {
            return Some(HeaderValue::from_static("*"));
        }
        let text = origin.to_str().ok()?.to_ascii_lowercase();
        let listed = self.origins.contains(&text);
        (listed || self.any_origin).then(|| origin.clone())
    }

    fn add_origin_headers(&self, origin: &HeaderValue, headers: &mut HeaderMap) -> bool {
        let Some(allowed) = self.allow_origin(origin) else {
            return false;
        };
        let echoes_origin = allowed != "*";
        headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, allowed);
        if echoes_origin {
            // The answer depends on Origin: caches must key on it.
            headers.append(VARY, HeaderValue::from_static("Origin"));
        }
        if self.allow_credentials {
            headers.insert(
                ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
        true
    }

    /// Adds the CORS headers of an actual (non-preflight) response.
    pub fn decorate(&self, origin: Option<&HeaderValue>, response: &mut Response<ResponseBody>) {
        let Some(origin) = origin else {
            return;
        };
        if self.add_origin_headers(origin, response.headers_mut()) {
            response.headers_mut().insert(
                ACCESS_CONTROL_EXPOSE_HEADERS,
                HeaderValue::from_static(EXPOSED_HEADERS),
            );
        }
    }

    /// Answers `OPTIONS` on a route that allows `methods`: a CORS preflight when the request
    /// has `Origin` and `Access-Control-Request-Method`, else a plain `Allow` answer.
    pub fn options(
        &self,
        request_headers: &HeaderMap,
        methods: &'static str,
    ) -> Response<ResponseBody> {
        let origin = request_headers.get(http::header::ORIGIN);
        let requested_method = request_headers.get(http::header::ACCESS_CONTROL_REQUEST_METHOD);
        let (Some(origin), Some(_)) = (origin, requested_method) else {
            let mut response = empty_response(StatusCode::NO_CONTENT);
            response
                .headers_mut()
                .insert(ALLOW, HeaderValue::from_static(methods));
            return response;
        };
        let mut response = empty_response(StatusCode::NO_CONTENT);
        if !self.add_origin_headers(origin, response.headers_mut()) {
            return problem(
                StatusCode::FORBIDDEN,
                "this origin is not allowed to call the server (see [cors] allowed_origins)",
            );
        }
        let headers = response.headers_mut();
        headers.insert(ALLOW, HeaderValue::from_static(methods));
        headers.insert(
            ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static(methods),
        );
        headers.insert(
            ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static(ALLOWED_HEADERS),
        );
        headers.insert(ACCESS_CONTROL_MAX_AGE, self.max_age.clone());
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn preflight_headers(origin: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(http::header::ORIGIN, HeaderValue::from_str(origin).unwrap());
        headers.insert(
            http::header::ACCESS_CONTROL_REQUEST_METHOD,
            HeaderValue::from_static("POST"),
        );
        headers
    }

    #[test]
    fn any_origin_gets_star() {
        let cors = Cors::new(&CorsConfig::default());
        let response = cors.options(&preflight_headers("https://app.example"), "POST, OPTIONS");
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
        let headers = response.headers();
        assert_eq!(headers[ACCESS_CONTROL_ALLOW_ORIGIN], "*");
        assert_eq!(headers[ACCESS_CONTROL_ALLOW_METHODS], "POST, OPTIONS");
        assert!(
            headers[ACCESS_CONTROL_ALLOW_HEADERS]
                .to_str()
                .unwrap()
                .contains("Authorization")
        );
        assert!(headers.get(ACCESS_CONTROL_ALLOW_CREDENTIALS).is_none());
    }

    #[test]
    fn listed_origins_are_echoed_with_credentials_and_others_refused() {
        let cors = Cors::new(&CorsConfig {
            allowed_origins: vec!["https://App.example/".into()],
            allow_credentials: true,
            max_age_seconds: 5,
        });
        let response = cors.options(&preflight_headers("https://app.example"), "GET");
        let headers = response.headers();
        assert_eq!(headers[ACCESS_CONTROL_ALLOW_ORIGIN], "https://app.example");
        assert_eq!(headers[ACCESS_CONTROL_ALLOW_CREDENTIALS], "true");
        assert_eq!(headers[VARY], "Origin");
        assert_eq!(headers[ACCESS_CONTROL_MAX_AGE], "5");
        let refused = cors.options(&preflight_headers("https://evil.example"), "GET");
        assert_eq!(refused.status(), StatusCode::FORBIDDEN);

        let mut actual = empty_response(StatusCode::OK);
        cors.decorate(
            Some(&HeaderValue::from_static("https://evil.example")),
            &mut actual,
        );
        assert!(actual.headers().get(ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
        cors.decorate(
            Some(&HeaderValue::from_static("https://app.example")),
            &mut actual,
        );
        assert!(
            actual
                .headers()
                .get(ACCESS_CONTROL_EXPOSE_HEADERS)
                .is_some()
        );
    }

    #[test]
    fn plain_options_lists_allow() {
        let cors = Cors::new(&CorsConfig::default());
        let response = cors.options(&HeaderMap::new(), "GET, HEAD, OPTIONS");
        assert_eq!(response.headers()[ALLOW], "GET, HEAD, OPTIONS");
        assert!(
            response
                .headers()
                .get(ACCESS_CONTROL_ALLOW_ORIGIN)
                .is_none()
        );
    }
}
