//! SASL PLAIN (RFC 4616) and LOGIN decoding for SMTP AUTH (RFC 4954).

use base64::Engine as _;

/// Decodes one base64 line of a SASL exchange; `None` if it is not base64.
pub fn decode_line(line: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD
        .decode(line.trim())
        .ok()
}

pub fn encode(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// RFC 4616 §2: `[authzid] NUL authcid NUL passwd`. Returns (login, password); an authzid
/// other than empty or the login itself is refused (no proxy authorization).
pub fn parse_plain(message: &[u8]) -> Option<(String, String)> {
    let text = std::str::from_utf8(message).ok()?;
    let mut parts = text.split('\0');
    let authzid = parts.next()?;
    let login = parts.next()?;
    let password = parts.next()?;
    if parts.next().is_some() || login.is_empty() || password.is_empty() {
        return None;
    }
    if !authzid.is_empty() && !authzid.eq_ignore_ascii_case(login) {
        return None;
    }
    Some((login.to_owned(), password.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_messages_are_split_and_checked() {
        assert_eq!(
            parse_plain(b"\0alice@x.test\0pw"),
            Some(("alice@x.test".into(), "pw".into()))
        );
        assert_eq!(
            parse_plain(b"alice@x.test\0alice@x.test\0pw"),
            Some(("alice@x.test".into(), "pw".into()))
        );
        assert_eq!(parse_plain(b"bob@x.test\0alice@x.test\0pw"), None);
        assert_eq!(parse_plain(b"\0alice@x.test"), None);
        assert_eq!(parse_plain(b"\0alice@x.test\0"), None);
        assert_eq!(decode_line("AGFsaWNlAHB3"), Some(b"\0alice\0pw".to_vec()));
        assert_eq!(decode_line("not base64!"), None);
    }
}
