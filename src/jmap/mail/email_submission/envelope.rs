//! The Envelope of an EmailSubmission (RFC 8621 §7): its JSON form, its derivation from the
//! Email's headers when the client gives none (RFC 8621 §7.5), and the release time its
//! FUTURERELEASE parameters ask for (RFC 4865 HOLDFOR / HOLDUNTIL).

use std::collections::HashSet;

use serde_json::{Map, Value};

use super::MAX_DELAYED_SEND_SECONDS;
use crate::jmap::error::{SetError, SetErrorType};
use crate::jmap::mail::identity::may_send_as;
use crate::jmap::types::UtcDate;
use crate::mail::parsed::{EmailAddress, ParsedEmail};
use crate::mail::submission::{Envelope, EnvelopeAddress};

/// RFC 5321 §4.5.3.1.3: the longest path.
const MAX_ADDRESS_BYTES: usize = 256;
/// Far more than any SMTP extension uses; bounds what a record stores.
const MAX_PARAMETERS: usize = 16;
const MAX_PARAMETER_BYTES: usize = 500;

pub fn to_json(envelope: &Envelope) -> Value {
    let mut object = Map::with_capacity(2);
    object.insert("mailFrom".into(), address_json(&envelope.mail_from));
    object.insert(
        "rcptTo".into(),
        envelope.rcpt_to.iter().map(address_json).collect(),
    );
    Value::Object(object)
}

fn address_json(address: &EnvelopeAddress) -> Value {
    let parameters = match &address.parameters {
        None => Value::Null,
        Some(parameters) => Value::Object(
            parameters
                .iter()
                .map(|(name, value)| {
                    (
                        name.clone(),
                        value.clone().map_or(Value::Null, Value::String),
                    )
                })
                .collect(),
        ),
    };
    let mut object = Map::with_capacity(2);
    object.insert("email".into(), Value::String(address.email.clone()));
    object.insert("parameters".into(), parameters);
    Value::Object(object)
}

fn invalid_envelope(description: impl Into<String>) -> SetError {
    SetError::invalid_properties(["envelope"], description)
}

/// Reads a client's Envelope (RFC 8621 §7: `{mailFrom: Address, rcptTo: Address[]}`).
/// Recipient addresses are only checked for shape here (the caller answers
/// `invalidRecipients` for bad ones, with the list).
pub fn parse(value: &Value) -> Result<Envelope, SetError> {
    let Value::Object(members) = value else {
        return Err(invalid_envelope("envelope must be an object"));
    };
    if let Some(unknown) = members
        .keys()
        .find(|key| !matches!(key.as_str(), "mailFrom" | "rcptTo"))
    {
        return Err(invalid_envelope(format!(
            "unknown envelope member {unknown:?}"
        )));
    }
    let mail_from = members
        .get("mailFrom")
        .ok_or_else(|| invalid_envelope("envelope.mailFrom is required"))
        .and_then(parse_address)?;
    let Some(Value::Array(items)) = members.get("rcptTo") else {
        return Err(invalid_envelope("envelope.rcptTo must be an Address[]"));
    };
    let rcpt_to = items
        .iter()
        .map(parse_address)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Envelope { mail_from, rcpt_to })
}

fn parse_address(value: &Value) -> Result<EnvelopeAddress, SetError> {
    let Value::Object(members) = value else {
        return Err(invalid_envelope("an envelope Address must be an object"));
    };
    if let Some(unknown) = members
        .keys()
        .find(|key| !matches!(key.as_str(), "email" | "parameters"))
    {
        return Err(invalid_envelope(format!(
            "unknown Address member {unknown:?}"
        )));
    }
    let Some(Value::String(email)) = members.get("email") else {
        return Err(invalid_envelope("an envelope Address needs a String email"));
    };
    let parameters = match members.get("parameters") {
        None | Some(Value::Null) => None,
        Some(Value::Object(parameters)) => {
            if parameters.len() > MAX_PARAMETERS {
                return Err(invalid_envelope("too many SMTP parameters"));
            }
            let mut parsed = Vec::with_capacity(parameters.len());
            for (name, value) in parameters {
                let value = match value {
                    Value::Null => None,
                    Value::String(text) if is_esmtp_value(text) => Some(text.clone()),
                    _ => {
                        return Err(invalid_envelope(format!(
                            "SMTP parameter {name:?} needs a String value without spaces or '='"
                        )));
                    }
                };
                if !is_esmtp_keyword(name) {
                    return Err(invalid_envelope(format!(
                        "{name:?} is not an SMTP parameter name"
                    )));
                }
                parsed.push((name.clone(), value));
            }
            Some(parsed)
        }
        Some(_) => return Err(invalid_envelope("Address parameters must be an object")),
    };
    Ok(EnvelopeAddress {
        email: email.clone(),
        parameters,
    })
}

/// RFC 5321 §4.1.2 esmtp-keyword: `(ALPHA / DIGIT) *(ALPHA / DIGIT / "-")`.
fn is_esmtp_keyword(name: &str) -> bool {
    name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// RFC 5321 §4.1.2 esmtp-value: `1*(%d33-60 / %d62-126)` (RFC 6531 adds UTF-8).
fn is_esmtp_value(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= MAX_PARAMETER_BYTES
        && value
            .chars()
            .all(|c| !c.is_whitespace() && !c.is_control() && c != '=')
}

/// An address the SMTP client can put between `<` and `>`: `local@domain`, no spaces,
/// controls or angle brackets, within RFC 5321's length.
pub fn is_smtp_address(address: &str) -> bool {
    let Some((local, domain)) = address.rsplit_once('@') else {
        return false;
    };
    address.len() <= MAX_ADDRESS_BYTES
        && !local.is_empty()
        && domain.contains(|c: char| c.is_ascii_alphanumeric())
        && !domain.starts_with('.')
        && !address
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | ',' | ';'))
}

/// RFC 8621 §7.5: the envelope the server generates when the client gives none.
/// - mailFrom: the Sender header's address if present, else From's; more than one address
///   there is rejected as `invalidEmail`. An address the Identity may not use is replaced by
///   the Identity's email.
/// - rcptTo: the deduplicated addresses of To, Cc and Bcc, without parameters.
pub fn derive(parsed: &ParsedEmail, identity_email: &str) -> Result<Envelope, SetError> {
    let (header, addresses) = match (&parsed.sender, &parsed.from) {
        (Some(sender), _) if !sender.is_empty() => ("sender", sender),
        (_, Some(from)) if !from.is_empty() => ("from", from),
        _ => return Err(invalid_email(["from"], "the Email has no From address")),
    };
    if addresses.len() > 1 {
        return Err(invalid_email(
            [header],
            format!("the {header} header has more than one address"),
        ));
    }
    let found = addresses[0].email.as_str();
    let mail_from = if may_send_as(identity_email, found) {
        found
    } else {
        identity_email
    };
    let mut seen = HashSet::new();
    let rcpt_to = [&parsed.to, &parsed.cc, &parsed.bcc]
        .into_iter()
        .flatten()
        .flatten()
        .map(|address: &EmailAddress| address.email.trim())
        .filter(|email| !email.is_empty() && seen.insert(email.to_lowercase()))
        .map(EnvelopeAddress::plain)
        .collect();
    Ok(Envelope {
        mail_from: EnvelopeAddress::plain(mail_from),
        rcpt_to,
    })
}

/// RFC 8621 §7.5 `invalidEmail`, with the Email properties at fault.
pub fn invalid_email<const N: usize>(
    properties: [&str; N],
    description: impl Into<String>,
) -> SetError {
    SetError {
        properties: properties.iter().map(|p| (*p).to_owned()).collect(),
        ..SetError::with_description(SetErrorType::InvalidEmail, description)
    }
}

/// When the message may leave (unix seconds): `now`, or later as mailFrom's FUTURERELEASE
/// parameter says (RFC 4865 §3: HOLDFOR seconds or HOLDUNTIL date-time, not both), at most
/// maxDelayedSend ahead (RFC 8621 §1.3.2).
pub fn release_time(mail_from: &EnvelopeAddress, now: i64) -> Result<i64, SetError> {
    let hold_for = mail_from.parameter("HOLDFOR");
    let hold_until = mail_from.parameter("HOLDUNTIL");
    let release = match (hold_for, hold_until) {
        (None, None) => return Ok(now),
        (Some(_), Some(_)) => {
            return Err(invalid_envelope(
                "HOLDFOR and HOLDUNTIL cannot be used together (RFC 4865 §3)",
            ));
        }
        (Some(seconds), None) => {
            let seconds = seconds
                .and_then(|text| text.parse::<u64>().ok())
                .ok_or_else(|| invalid_envelope("HOLDFOR needs a number of seconds"))?;
            now.saturating_add(i64::try_from(seconds).unwrap_or(i64::MAX))
        }
        (None, Some(date)) => date
            .and_then(|text| UtcDate::parse(text).ok())
            .map(UtcDate::unix_seconds)
            .ok_or_else(|| invalid_envelope("HOLDUNTIL needs a UTC date-time (…Z)"))?
            .max(now),
    };
    let max_delay = i64::try_from(MAX_DELAYED_SEND_SECONDS).unwrap_or(i64::MAX);
    if release - now > max_delay {
        return Err(invalid_envelope(format!(
            "the release is more than maxDelayedSend ({MAX_DELAYED_SEND_SECONDS} s) away"
        )));
    }
    Ok(release)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn address(email: &str) -> EmailAddress {
        EmailAddress {
            name: None,
            email: email.to_owned(),
        }
    }

    #[test]
    fn envelopes_round_trip_through_json() {
        let value = json!({
            "mailFrom": {"email": "a@example.test", "parameters": {"HOLDFOR": "60", "SMTPUTF8": null}},
            "rcptTo": [{"email": "b@example.org", "parameters": null}],
        });
        let envelope = parse(&value).expect("valid");
        assert_eq!(to_json(&envelope), value);
        for bad in [
            json!({"mailFrom": {"email": "a@b"}}),
            json!({"mailFrom": {"email": 3}, "rcptTo": []}),
            json!({"mailFrom": {"email": "a@b", "parameters": {"X": "a b"}}, "rcptTo": []}),
            json!({"mailFrom": {"email": "a@b", "parameters": {"-X": "1"}}, "rcptTo": []}),
            json!({"mailFrom": {"email": "a@b"}, "rcptTo": [], "extra": 1}),
        ] {
            let error = parse(&bad).expect_err("invalid");
            assert_eq!(error.properties, ["envelope"], "{bad}");
        }
    }

    #[test]
    fn derivation_follows_rfc_8621_section_7_5() {
        let mut parsed = ParsedEmail {
            from: Some(vec![address("alice@example.test")]),
            to: Some(vec![
                address("bob@example.org"),
                address("Carol@example.org"),
            ]),
            cc: Some(vec![address("carol@example.org")]),
            bcc: Some(vec![
                address("dave@example.net"),
                address("bob@example.org"),
            ]),
            ..ParsedEmail::default()
        };
        let envelope = derive(&parsed, "alice@example.test").expect("derived");
        assert_eq!(envelope.mail_from.email, "alice@example.test");
        let rcpt: Vec<&str> = envelope.rcpt_to.iter().map(|a| a.email.as_str()).collect();
        assert_eq!(
            rcpt,
            ["bob@example.org", "Carol@example.org", "dave@example.net"]
        );
        // Sender wins over From; an address the Identity may not use becomes the Identity's.
        parsed.sender = Some(vec![address("someone@else.test")]);
        let envelope = derive(&parsed, "alice@example.test").expect("derived");
        assert_eq!(envelope.mail_from.email, "alice@example.test");
        parsed.sender = None;
        parsed.from = Some(vec![address("a@example.test"), address("b@example.test")]);
        let error = derive(&parsed, "*@example.test").expect_err("two From addresses");
        assert_eq!(error.kind, SetErrorType::InvalidEmail);
        assert_eq!(error.properties, ["from"]);
        parsed.from = None;
        let error = derive(&parsed, "alice@example.test").expect_err("no From");
        assert_eq!(error.kind, SetErrorType::InvalidEmail);
    }

    #[test]
    fn future_release_is_bounded_by_max_delayed_send() {
        let now = 1_800_000_000;
        let with = |name: &str, value: &str| EnvelopeAddress {
            email: "a@example.test".into(),
            parameters: Some(vec![(name.into(), Some(value.into()))]),
        };
        assert_eq!(
            release_time(&EnvelopeAddress::plain("a@example.test"), now),
            Ok(now)
        );
        assert_eq!(release_time(&with("holdfor", "90"), now), Ok(now + 90));
        let until = UtcDate::from_unix(now + 3600, 0).unwrap().to_string();
        assert_eq!(
            release_time(&with("HOLDUNTIL", &until), now),
            Ok(now + 3600)
        );
        let past = UtcDate::from_unix(now - 3600, 0).unwrap().to_string();
        assert_eq!(release_time(&with("HOLDUNTIL", &past), now), Ok(now));
        let too_far = (MAX_DELAYED_SEND_SECONDS + 1).to_string();
        assert!(release_time(&with("HOLDFOR", &too_far), now).is_err());
        assert!(release_time(&with("HOLDFOR", "soon"), now).is_err());
    }

    #[test]
    fn smtp_addresses_are_checked_for_shape() {
        assert!(is_smtp_address("bob@example.org"));
        for bad in [
            "bob",
            "@example.org",
            "bob@",
            "b ob@example.org",
            "<b>@x.org",
            "a@.x",
        ] {
            assert!(!is_smtp_address(bad), "{bad}");
        }
    }
}
