//! The runner's view of the server under test: one HTTP client, the credentials, and the URLs
//! and limits read from the session resource.

use std::time::Duration;

use base64::Engine as _;
use serde_json::Value;

/// How a request authenticates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    /// No `Authorization` header at all.
    Anonymous,
    /// A literal `Authorization` header value (`Basic …` or `Bearer …`).
    Header(String),
}

impl Auth {
    pub fn basic(user: &str, password: &str) -> Self {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        Self::Header(format!("Basic {token}"))
    }

    pub fn bearer(token: &str) -> Self {
        Self::Header(format!("Bearer {token}"))
    }
}

/// A complete HTTP answer, body buffered (the runner only sends small requests, and blob bodies
/// it compares byte for byte anyway).
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }

    /// The media type without parameters, lower-cased.
    pub fn media_type(&self) -> String {
        self.header("content-type")
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
    }

    pub fn json(&self) -> Result<Value, String> {
        serde_json::from_slice(&self.body).map_err(|error| {
            format!(
                "HTTP {} body is not JSON ({error}): {}",
                self.status,
                String::from_utf8_lossy(&self.body[..self.body.len().min(200)])
            )
        })
    }
}

/// One request the runner sends.
pub struct Outgoing<'a> {
    pub method: reqwest::Method,
    pub url: &'a str,
    pub auth: &'a Auth,
    pub content_type: Option<&'a str>,
    pub extra_headers: &'a [(&'a str, &'a str)],
    pub body: Vec<u8>,
}

#[derive(Clone)]
pub struct Http {
    client: reqwest::Client,
}

impl Http {
    pub fn new(timeout: Duration) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            // A redirect would hide what the server answered.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|error| format!("cannot build HTTP client: {error}"))?;
        Ok(Self { client })
    }

    pub async fn send(&self, outgoing: Outgoing<'_>) -> Result<Answer, String> {
        let mut request = self.client.request(outgoing.method.clone(), outgoing.url);
        if let Auth::Header(value) = outgoing.auth {
            request = request.header("authorization", value.as_str());
        }
        if let Some(content_type) = outgoing.content_type {
            request = request.header("content-type", content_type);
        }
        for (name, value) in outgoing.extra_headers {
            request = request.header(*name, *value);
        }
        if !outgoing.body.is_empty() || outgoing.method == reqwest::Method::POST {
            request = request.body(outgoing.body);
        }
        let response = request
            .send()
            .await
            .map_err(|error| format!("{} {}: {error}", outgoing.method, outgoing.url))?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response
            .bytes()
            .await
            .map_err(|error| format!("reading body of {}: {error}", outgoing.url))?
            .to_vec();
        Ok(Answer {
            status,
            headers,
            body,
        })
    }

    pub async fn get(&self, url: &str, auth: &Auth) -> Result<Answer, String> {
        self.send(Outgoing {
            method: reqwest::Method::GET,
            url,
            auth,
            content_type: None,
            extra_headers: &[],
            body: Vec::new(),
        })
        .await
    }

    pub async fn post_json(&self, url: &str, auth: &Auth, body: &Value) -> Result<Answer, String> {
        self.post_bytes(url, auth, "application/json", body.to_string().into_bytes())
            .await
    }

    pub async fn post_bytes(
        &self,
        url: &str,
        auth: &Auth,
        content_type: &str,
        body: Vec<u8>,
    ) -> Result<Answer, String> {
        self.send(Outgoing {
            method: reqwest::Method::POST,
            url,
            auth,
            content_type: Some(content_type),
            extra_headers: &[],
            body,
        })
        .await
    }
}

/// Resolves a possibly relative URL from the session resource against the session URL.
pub fn resolve_url(base: &str, reference: &str) -> Result<String, String> {
    let base = reqwest::Url::parse(base).map_err(|error| format!("bad URL {base}: {error}"))?;
    base.join(reference)
        .map(|url| url.to_string())
        .map_err(|error| format!("bad URL {reference}: {error}"))
}

/// Fills an RFC 6570 level-1 URI template (the form RFC 8620 §2 uses for downloadUrl,
/// uploadUrl and eventSourceUrl), percent-encoding every value.
pub fn expand_template(template: &str, values: &[(&str, &str)]) -> String {
    let mut expanded = template.to_owned();
    for (name, value) in values {
        expanded = expanded.replace(&format!("{{{name}}}"), &percent_encode(value));
    }
    expanded
}

/// RFC 3986 unreserved characters pass; everything else is percent-encoded.
pub fn percent_encode(value: &str) -> String {
    let mut encoded = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_are_expanded_and_encoded() {
        let url = expand_template(
            "http://h/d/{accountId}/{blobId}/{name}?accept={type}",
            &[
                ("accountId", "A1"),
                ("blobId", "B2"),
                ("name", "a b.txt"),
                ("type", "text/plain"),
            ],
        );
        assert_eq!(url, "http://h/d/A1/B2/a%20b.txt?accept=text%2Fplain");
    }

    #[test]
    fn relative_urls_resolve_against_the_session_url() {
        assert_eq!(
            resolve_url("http://h:8080/.well-known/jmap", "/api/").unwrap(),
            "http://h:8080/api/"
        );
        assert_eq!(
            resolve_url("http://h/.well-known/jmap", "https://o/x").unwrap(),
            "https://o/x"
        );
    }
}
