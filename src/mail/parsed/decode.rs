//! Decoding part bodies: transfer encodings (RFC 2045 §6) and charsets, each reporting whether
//! the input was malformed (RFC 8621 §4.1.4 `isEncodingProblem`) instead of failing.

use std::borrow::Cow;

use mail_parser::parsers::MessageStream;

use crate::jmap::types::TransferEncoding;

/// The octets of `body` after undoing `encoding`, and whether the encoding was malformed (the
/// raw octets are returned then, as mail-parser does when it recovers a part).
pub fn transfer_decode(body: &[u8], encoding: TransferEncoding) -> (Cow<'_, [u8]>, bool) {
    let decoded = match encoding {
        TransferEncoding::Identity => return (Cow::Borrowed(body), false),
        TransferEncoding::Base64 => MessageStream::new(body).decode_base64_mime(b""),
        TransferEncoding::QuotedPrintable => {
            MessageStream::new(body).decode_quoted_printable_mime(b"")
        }
    };
    match decoded {
        (usize::MAX, _) => (Cow::Borrowed(body), true),
        (_, bytes) => (Cow::Owned(bytes.into_owned()), false),
    }
}

/// Text from `bytes` in `charset`, and whether decoding met malformed input or an unknown
/// charset (replacement characters stand in for what could not be decoded).
pub fn charset_decode(bytes: &[u8], charset: Option<&str>) -> (String, bool) {
    let label = charset.map(str::trim).unwrap_or("us-ascii");
    let lowercase = label.to_ascii_lowercase();
    let is_ascii_label = matches!(
        lowercase.as_str(),
        "us-ascii" | "ascii" | "ansi_x3.4-1968" | "iso646-us" | "us"
    );
    if is_ascii_label || lowercase == "utf-8" || lowercase == "utf8" {
        return match std::str::from_utf8(bytes) {
            // 8-bit octets in a us-ascii part are malformed, but are almost always UTF-8.
            Ok(text) => (text.to_owned(), is_ascii_label && !bytes.is_ascii()),
            Err(_) => (String::from_utf8_lossy(bytes).into_owned(), true),
        };
    }
    if let Some(encoding) = encoding_rs::Encoding::for_label(label.as_bytes()) {
        let (text, had_errors) = encoding.decode_without_bom_handling(bytes);
        return (text.into_owned(), had_errors);
    }
    // Charsets encoding_rs does not know (UTF-7, some IBM code pages) that mail-parser does.
    if let Some(decoder) = mail_parser::decoders::charsets::map::charset_decoder(label.as_bytes()) {
        return (decoder(bytes), false);
    }
    (String::from_utf8_lossy(bytes).into_owned(), true)
}

/// Decoded text of a text part: transfer decoding then charset decoding.
pub fn part_text(body: &[u8], encoding: TransferEncoding, charset: Option<&str>) -> (String, bool) {
    let (octets, transfer_problem) = transfer_decode(body, encoding);
    let (text, charset_problem) = charset_decode(&octets, charset);
    (text, transfer_problem || charset_problem)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transfer_encodings() {
        let (bytes, problem) =
            transfer_decode(b"aGVsbG8g\r\nd29ybGQ=\r\n", TransferEncoding::Base64);
        assert_eq!((bytes.as_ref(), problem), (&b"hello world"[..], false));
        let (bytes, problem) =
            transfer_decode(b"caf=C3=A9 =\r\nau lait", TransferEncoding::QuotedPrintable);
        assert_eq!(
            (bytes.as_ref(), problem),
            ("café au lait".as_bytes(), false)
        );
        let (bytes, problem) = transfer_decode(b"not*base64!", TransferEncoding::Base64);
        assert_eq!((bytes.as_ref(), problem), (&b"not*base64!"[..], true));
        let (bytes, problem) = transfer_decode(b"as is\xff", TransferEncoding::Identity);
        assert_eq!((bytes.as_ref(), problem), (&b"as is\xff"[..], false));
    }

    #[test]
    fn charsets() {
        assert_eq!(
            charset_decode(b"caf\xe9", Some("ISO-8859-1")),
            ("café".to_owned(), false)
        );
        assert_eq!(
            charset_decode("café".as_bytes(), Some("utf-8")),
            ("café".to_owned(), false)
        );
        let (text, problem) = charset_decode(b"caf\xe9", Some("utf-8"));
        assert!(problem);
        assert_eq!(text, "caf\u{fffd}");
        let (_, problem) = charset_decode(b"plain", Some("x-no-such-charset"));
        assert!(problem);
        assert_eq!(
            charset_decode(b"\x82\xa0", Some("shift_jis")),
            ("あ".to_owned(), false)
        );
        let (_, problem) = charset_decode("é".as_bytes(), None);
        assert!(problem, "8-bit octets are not us-ascii");
        assert_eq!(charset_decode(b"ascii", None), ("ascii".to_owned(), false));
    }
}
