//! Header logic of downloads, kept apart from I/O so it can be tested exhaustively: byte
//! ranges (RFC 9110 §14), `Content-Disposition` (RFC 6266 with RFC 8187 `filename*`), and
//! the media type taken from the download URL's `type` variable (RFC 8620 §6.2).

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// What a `Range` header asks of a representation of `size` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeRequest {
    /// No usable range: send everything with 200 (also for multiple ranges, which RFC 9110
    /// §14.2 lets a server ignore).
    Full,
    /// One satisfiable range: send `start..=end` with 206.
    Partial { start: u64, end: u64 },
    /// Nothing satisfiable: 416 with `Content-Range: bytes */size`.
    Unsatisfiable,
}

/// RFC 9110 §14.1.2 byte-range-spec / suffix-range-spec, single range only.
pub fn parse_range(header: Option<&str>, size: u64) -> RangeRequest {
    let Some(header) = header else {
        return RangeRequest::Full;
    };
    let Some(spec) = header.trim().strip_prefix("bytes=") else {
        // Other range units are ignored (RFC 9110 §14.2).
        return RangeRequest::Full;
    };
    if spec.contains(',') {
        return RangeRequest::Full;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeRequest::Full;
    };
    let (first, last) = (first.trim(), last.trim());
    if first.is_empty() {
        // Suffix: the last N bytes.
        let Ok(suffix) = last.parse::<u64>() else {
            return RangeRequest::Full;
        };
        if suffix == 0 || size == 0 {
            return RangeRequest::Unsatisfiable;
        }
        return RangeRequest::Partial {
            start: size.saturating_sub(suffix),
            end: size - 1,
        };
    }
    let Ok(start) = first.parse::<u64>() else {
        return RangeRequest::Full;
    };
    let end = if last.is_empty() {
        u64::MAX
    } else {
        match last.parse::<u64>() {
            Ok(end) if end >= start => end,
            // An invalid range-spec makes the header invalid: ignore it.
            _ => return RangeRequest::Full,
        }
    };
    if start >= size {
        return RangeRequest::Unsatisfiable;
    }
    RangeRequest::Partial {
        start,
        end: end.min(size - 1),
    }
}

/// RFC 8187 attr-char: everything else in `filename*` is percent-encoded.
const ATTR_CHAR_ESCAPES: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'!')
    .remove(b'#')
    .remove(b'$')
    .remove(b'&')
    .remove(b'+')
    .remove(b'-')
    .remove(b'.')
    .remove(b'^')
    .remove(b'_')
    .remove(b'`')
    .remove(b'|')
    .remove(b'~');

/// `attachment; filename="<ascii fallback>"; filename*=UTF-8''<encoded>` (RFC 6266 §4.3:
/// both, the fallback first, for old user agents).
pub fn content_disposition(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| if c.is_control() { '_' } else { c })
        .collect();
    let cleaned = if cleaned.trim().is_empty() {
        "download".to_owned()
    } else {
        cleaned
    };
    let fallback: String = cleaned
        .chars()
        .map(|c| match c {
            '"' | '\\' => '_',
            c if c.is_ascii() => c,
            _ => '_',
        })
        .collect();
    let encoded = utf8_percent_encode(&cleaned, ATTR_CHAR_ESCAPES);
    format!("attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}")
}

fn is_token_char(c: char) -> bool {
    // RFC 9110 §5.6.2 tchar.
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

/// The `type` variable as a `Content-Type`, if it is a well-formed media type (RFC 9110
/// §8.3.1: type "/" subtype *( OWS ";" OWS parameter )); anything else downloads as
/// `application/octet-stream`, so a URL cannot inject headers or odd types.
pub fn media_type(requested: Option<&str>) -> String {
    const FALLBACK: &str = "application/octet-stream";
    let Some(requested) = requested.map(str::trim).filter(|text| !text.is_empty()) else {
        return FALLBACK.to_owned();
    };
    if requested.len() > 255
        || !requested
            .chars()
            .all(|c| c == '\t' || (' '..='~').contains(&c))
    {
        return FALLBACK.to_owned();
    }
    let mut parts = requested.split(';');
    let essence = parts.next().unwrap_or_default().trim();
    let Some((kind, subtype)) = essence.split_once('/') else {
        return FALLBACK.to_owned();
    };
    let valid_token = |text: &str| !text.is_empty() && text.chars().all(is_token_char);
    if !valid_token(kind) || !valid_token(subtype) {
        return FALLBACK.to_owned();
    }
    for parameter in parts {
        let Some((name, value)) = parameter.trim().split_once('=') else {
            return FALLBACK.to_owned();
        };
        let quoted = value.len() >= 2 && value.starts_with('"') && value.ends_with('"');
        if !valid_token(name) || !(quoted || valid_token(value)) {
            return FALLBACK.to_owned();
        }
    }
    requested.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        use RangeRequest::*;
        assert_eq!(parse_range(None, 10), Full);
        assert_eq!(
            parse_range(Some("bytes=0-3"), 10),
            Partial { start: 0, end: 3 }
        );
        assert_eq!(
            parse_range(Some("bytes=5-"), 10),
            Partial { start: 5, end: 9 }
        );
        assert_eq!(
            parse_range(Some("bytes=5-100"), 10),
            Partial { start: 5, end: 9 }
        );
        assert_eq!(
            parse_range(Some("bytes=-3"), 10),
            Partial { start: 7, end: 9 }
        );
        assert_eq!(
            parse_range(Some("bytes=-30"), 10),
            Partial { start: 0, end: 9 }
        );
        assert_eq!(parse_range(Some("bytes=10-"), 10), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=-0"), 10), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=0-0"), 0), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=5-2"), 10), Full);
        assert_eq!(parse_range(Some("bytes=0-1,3-4"), 10), Full);
        assert_eq!(parse_range(Some("items=0-1"), 10), Full);
        assert_eq!(parse_range(Some("bytes=x-1"), 10), Full);
    }

    #[test]
    fn dispositions() {
        assert_eq!(
            content_disposition("report.pdf"),
            "attachment; filename=\"report.pdf\"; filename*=UTF-8''report.pdf"
        );
        assert_eq!(
            content_disposition("résumé \"final\".txt"),
            "attachment; filename=\"r_sum_ _final_.txt\"; \
             filename*=UTF-8''r%C3%A9sum%C3%A9%20%22final%22.txt"
        );
        assert!(content_disposition("a\r\nb").starts_with("attachment; filename=\"a__b\""));
        assert!(content_disposition("").contains("filename=\"download\""));
    }

    #[test]
    fn media_types() {
        assert_eq!(media_type(Some("image/png")), "image/png");
        assert_eq!(
            media_type(Some("text/plain; charset=utf-8")),
            "text/plain; charset=utf-8"
        );
        assert_eq!(
            media_type(Some("text/plain;charset=\"a b\"")),
            "text/plain;charset=\"a b\""
        );
        for bad in [
            "",
            "png",
            "text/",
            "a b/c",
            "text/plain\r\nX: y",
            "text/plain; x",
            "é/x",
        ] {
            assert_eq!(media_type(Some(bad)), "application/octet-stream", "{bad:?}");
        }
        assert_eq!(media_type(None), "application/octet-stream");
    }
}
