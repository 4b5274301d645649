//! Header fields given as JMAP properties (RFC 8621 §4.1.2, §4.6): parsing
//! `header:{name}[:as{Form}][:all]`, the forms each field may be set in, and turning a JSON
//! value of a form into a mail-builder header value.

use std::borrow::Cow;

use mail_builder::headers::HeaderType;
use mail_builder::headers::address::Address;
use mail_builder::headers::message_id::MessageId;
use mail_builder::headers::raw::Raw;
use mail_builder::headers::text::Text;
use mail_builder::headers::url::URL;
use serde_json::{Map, Value};

/// The parsed forms of RFC 8621 §4.1.2: one type for reading (Email/get) and writing.
pub use crate::jmap::mail::email::render::headers::HeaderForm;

/// A `header:{name}[:as{Form}][:all]` property.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderProperty {
    /// The field name as the client spelt it (compared case-insensitively).
    pub name: String,
    pub form: HeaderForm,
    pub all: bool,
}

impl HeaderProperty {
    /// `None` when `property` is not a well-formed header property.
    pub fn parse(property: &str) -> Option<HeaderProperty> {
        let rest = property.strip_prefix("header:")?;
        let mut pieces = rest.split(':');
        let name = pieces.next()?;
        if !is_field_name(name) {
            return None;
        }
        let mut form = HeaderForm::Raw;
        let mut all = false;
        let mut next = pieces.next();
        if let Some(piece) = next
            && let Some(parsed) = HeaderForm::parse(piece)
        {
            form = parsed;
            next = pieces.next();
        }
        if next == Some("all") {
            all = true;
            next = pieces.next();
        }
        if next.is_some() {
            return None;
        }
        Some(HeaderProperty {
            name: name.to_owned(),
            form,
            all,
        })
    }
}

/// RFC 5322 §3.6.8: a field name is printable US-ASCII except `:`.
pub fn is_field_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|byte| (33..=126).contains(&byte) && byte != b':')
}

/// RFC 8621 §4.1.2: whether field `name` may be given in `form` (the same rule Email/get
/// applies to `header:` properties).
pub fn form_allowed(name: &str, form: HeaderForm) -> bool {
    form.allowed_for(&name.to_ascii_lowercase())
}

/// The usual spelling of well-known field names, so a message never carries `date` and
/// `Date` (mail-builder adds its own Date/Message-ID/MIME-Version by exact name).
pub fn canonical_name(name: &str) -> Cow<'static, str> {
    const CANONICAL: &[&str] = &[
        "Date",
        "From",
        "Sender",
        "Reply-To",
        "To",
        "Cc",
        "Bcc",
        "Message-ID",
        "In-Reply-To",
        "References",
        "Subject",
        "Comments",
        "Keywords",
        "MIME-Version",
        "Content-Type",
        "Content-Disposition",
        "Content-ID",
        "Content-Language",
        "Content-Location",
        "Content-Transfer-Encoding",
        "Content-Description",
        "List-Id",
    ];
    CANONICAL
        .iter()
        .find(|known| known.eq_ignore_ascii_case(name))
        .map_or_else(
            || Cow::Owned(name.to_owned()),
            |known| Cow::Borrowed(*known),
        )
}

/// The header values of one property: one per field instance (`:all` gives several). An
/// empty list writes no field. `Err` describes why the value is invalid.
pub fn header_values(
    form: HeaderForm,
    all: bool,
    value: &Value,
) -> Result<Vec<HeaderType<'static>>, String> {
    if value.is_null() {
        return Ok(Vec::new());
    }
    if !all {
        return Ok(one_value(form, value)?.into_iter().collect());
    }
    let Value::Array(instances) = value else {
        return Err("an :all header property takes an array (one value per field)".into());
    };
    let mut values = Vec::with_capacity(instances.len());
    for instance in instances {
        if let Some(header) = one_value(form, instance)? {
            values.push(header);
        }
    }
    Ok(values)
}

fn one_value(form: HeaderForm, value: &Value) -> Result<Option<HeaderType<'static>>, String> {
    if value.is_null() {
        return Ok(None);
    }
    match form {
        HeaderForm::Raw => {
            let text = expect_string(value)?;
            Ok(Some(Raw::new(raw_value(text)?).into()))
        }
        HeaderForm::Text => {
            let text = expect_string(value)?;
            Ok(Some(Text::new(single_line(text)).into()))
        }
        HeaderForm::Addresses => {
            let addresses = address_list(value)?;
            Ok((!addresses.is_empty()).then(|| Address::new_list(addresses).into()))
        }
        HeaderForm::GroupedAddresses => {
            let Value::Array(groups) = value else {
                return Err("expected an EmailAddressGroup[]".into());
            };
            let mut items = Vec::new();
            for group in groups {
                let Value::Object(members) = group else {
                    return Err("an EmailAddressGroup must be an object".into());
                };
                check_members(members, &["name", "addresses"])?;
                let addresses = address_list(members.get("addresses").unwrap_or(&Value::Null))?;
                match optional_string(members.get("name"))? {
                    Some(name) => {
                        items.push(Address::new_group(Some(single_line(name)), addresses));
                    }
                    None => items.extend(addresses),
                }
            }
            Ok((!items.is_empty()).then(|| Address::new_list(items).into()))
        }
        HeaderForm::MessageIds => {
            let ids = token_list(value, "message id", |c| c == '<' || c == '>')?;
            Ok((!ids.is_empty()).then(|| MessageId::from(ids).into()))
        }
        HeaderForm::Date => {
            let text = expect_string(value)?;
            let date = rfc5322_date(text).ok_or("not an RFC 3339 date-time with an offset")?;
            Ok(Some(Raw::new(date).into()))
        }
        HeaderForm::Urls => {
            let urls = token_list(value, "URL", |c| c == '<' || c == '>')?;
            Ok((!urls.is_empty()).then(|| URL::from(urls).into()))
        }
    }
}

fn expect_string(value: &Value) -> Result<&str, String> {
    value.as_str().ok_or_else(|| "expected a String".to_owned())
}

fn optional_string(value: Option<&Value>) -> Result<Option<&str>, String> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(_) => Err("expected a String or null".into()),
    }
}

fn check_members(members: &Map<String, Value>, known: &[&str]) -> Result<(), String> {
    match members.keys().find(|key| !known.contains(&key.as_str())) {
        Some(unknown) => Err(format!("unknown member {unknown:?}")),
        None => Ok(()),
    }
}

/// A raw value as RFC 8621 returns it (leading space, folded lines) becomes one unfolded
/// line; mail-builder folds it again. A line break that is not folding would end the field.
fn raw_value(text: &str) -> Result<String, String> {
    let unfolded = text.replace("\r\n ", " ").replace("\r\n\t", "\t");
    if unfolded.contains(['\r', '\n']) {
        return Err("a raw header value may contain line breaks only as folding".into());
    }
    Ok(unfolded.trim_start().to_owned())
}

/// Line breaks inside a text field would end the field: they become spaces.
fn single_line(text: &str) -> String {
    if !text.contains(['\r', '\n']) {
        return text.to_owned();
    }
    text.split(['\r', '\n'])
        .filter(|piece| !piece.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// An `EmailAddress[]` (RFC 8621 §4.1.2.3).
fn address_list(value: &Value) -> Result<Vec<Address<'static>>, String> {
    let Value::Array(items) = value else {
        return Err("expected an EmailAddress[]".into());
    };
    items
        .iter()
        .map(|item| {
            let Value::Object(members) = item else {
                return Err("an EmailAddress must be an object".to_owned());
            };
            check_members(members, &["name", "email"])?;
            let Some(Value::String(email)) = members.get("email") else {
                return Err("an EmailAddress needs a String \"email\"".to_owned());
            };
            if !is_addr_spec(email) {
                return Err(format!("{email:?} is not an email address"));
            }
            let name = optional_string(members.get("name"))?
                .map(single_line)
                .filter(|name| !name.is_empty());
            Ok(Address::new_address(name, email.clone()))
        })
        .collect()
}

/// Loose addr-spec check: something on each side of the last `@`, no spaces, controls or
/// characters that would break the field's syntax.
fn is_addr_spec(email: &str) -> bool {
    let Some((local, domain)) = email.rsplit_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.is_empty()
        && !email
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | ',' | ';'))
}

/// A `String[]` of tokens (message ids, URLs) without spaces or controls.
fn token_list(
    value: &Value,
    what: &str,
    forbidden: impl Fn(char) -> bool,
) -> Result<Vec<String>, String> {
    let Value::Array(items) = value else {
        return Err(format!("expected a {what} list (String[])"));
    };
    items
        .iter()
        .map(|item| {
            let Value::String(text) = item else {
                return Err(format!("a {what} must be a String"));
            };
            if text.is_empty()
                || text
                    .chars()
                    .any(|c| c.is_whitespace() || c.is_control() || forbidden(c))
            {
                return Err(format!("{text:?} is not a valid {what}"));
            }
            Ok(text.clone())
        })
        .collect()
}

/// RFC 8621 §4.1.2.6 `Date` (RFC 3339 `date-time`, any offset) to an RFC 5322 §3.3 date,
/// keeping the offset: `2024-02-29T13:05:09+01:00` → `Thu, 29 Feb 2024 13:05:09 +0100`.
pub fn rfc5322_date(text: &str) -> Option<String> {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let bytes = text.as_bytes();
    if bytes.len() < 20 || bytes[4] != b'-' || bytes[7] != b'-' || !matches!(bytes[10], b'T' | b't')
    {
        return None;
    }
    if bytes[13] != b':' || bytes[16] != b':' {
        return None;
    }
    let number = |range: std::ops::Range<usize>| -> Option<i64> {
        let digits = text.get(range)?;
        digits
            .bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| digits.parse().ok())?
    };
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
    let mut rest = &text[19..];
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        rest = &fraction[digits..];
    }
    let offset = match rest {
        "Z" | "z" => "+0000".to_owned(),
        _ => {
            let sign = rest.chars().next().filter(|c| matches!(c, '+' | '-'))?;
            let zone = &rest[1..];
            let bytes = zone.as_bytes();
            if bytes.len() != 5 || bytes[2] != b':' {
                return None;
            }
            let hours = zone
                .get(0..2)
                .filter(|d| d.bytes().all(|b| b.is_ascii_digit()))?;
            let minutes = zone
                .get(3..5)
                .filter(|d| d.bytes().all(|b| b.is_ascii_digit()))?;
            if hours > "23" || minutes > "59" {
                return None;
            }
            format!("{sign}{hours}{minutes}")
        }
    };
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let month_days = match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        1..=12 => 31,
        _ => return None,
    };
    if day < 1 || day > month_days || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    // Days since 1970-01-01 (Howard Hinnant's algorithm), for the day of the week.
    let shifted_year = if month <= 2 { year - 1 } else { year };
    let era = shifted_year.div_euclid(400);
    let year_of_era = shifted_year - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    let days = era * 146_097 + day_of_era - 719_468;
    let weekday = DAYS[usize::try_from(days.rem_euclid(7)).ok()?];
    let month_name = MONTHS[usize::try_from(month - 1).ok()?];
    Some(format!(
        "{weekday}, {day} {month_name} {year:04} {hour:02}:{minute:02}:{second:02} {offset}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_properties_parse_with_their_forms() {
        assert_eq!(
            HeaderProperty::parse("header:X-Foo"),
            Some(HeaderProperty {
                name: "X-Foo".into(),
                form: HeaderForm::Raw,
                all: false
            })
        );
        let parsed = HeaderProperty::parse("header:List-Post:asURLs:all").expect("parses");
        assert_eq!((parsed.form, parsed.all), (HeaderForm::Urls, true));
        let parsed = HeaderProperty::parse("header:To:all").expect("parses");
        assert_eq!((parsed.form, parsed.all), (HeaderForm::Raw, true));
        assert_eq!(HeaderProperty::parse("header:"), None);
        assert_eq!(HeaderProperty::parse("header:To:asBogus"), None);
        assert_eq!(HeaderProperty::parse("header:To:all:asRaw"), None);
        assert_eq!(HeaderProperty::parse("header:Bad Name"), None);
        assert_eq!(HeaderProperty::parse("subject"), None);
    }

    #[test]
    fn forms_follow_rfc_8621_section_4_1_2() {
        assert!(form_allowed("Subject", HeaderForm::Text));
        assert!(!form_allowed("Subject", HeaderForm::Addresses));
        assert!(form_allowed("from", HeaderForm::GroupedAddresses));
        assert!(!form_allowed("From", HeaderForm::Text));
        assert!(!form_allowed("Received", HeaderForm::Text));
        assert!(form_allowed("Received", HeaderForm::Raw));
        assert!(form_allowed("X-Anything", HeaderForm::Date));
        assert!(form_allowed("List-Id", HeaderForm::Text));
        assert!(!form_allowed("Date", HeaderForm::MessageIds));
        assert!(form_allowed("Resent-Message-ID", HeaderForm::MessageIds));
    }

    #[test]
    fn dates_keep_their_offset() {
        assert_eq!(
            rfc5322_date("2024-02-29T13:05:09+01:00").as_deref(),
            Some("Thu, 29 Feb 2024 13:05:09 +0100")
        );
        assert_eq!(
            rfc5322_date("1970-01-01T00:00:00Z").as_deref(),
            Some("Thu, 1 Jan 1970 00:00:00 +0000")
        );
        assert_eq!(
            rfc5322_date("2019-08-12T23:59:59.25-07:30").as_deref(),
            Some("Mon, 12 Aug 2019 23:59:59 -0730")
        );
        assert_eq!(rfc5322_date("2023-02-29T00:00:00Z"), None);
        assert_eq!(rfc5322_date("2023-01-01 00:00:00Z"), None);
        assert_eq!(rfc5322_date("2023-01-01T00:00:00"), None);
    }

    #[test]
    fn values_are_checked_by_form() {
        assert!(
            header_values(
                HeaderForm::Addresses,
                false,
                &serde_json::json!([{"email": "a@b"}])
            )
            .is_ok()
        );
        assert!(
            header_values(
                HeaderForm::Addresses,
                false,
                &serde_json::json!([{"email": "no at"}])
            )
            .is_err()
        );
        assert!(header_values(HeaderForm::Addresses, false, &serde_json::json!("a@b")).is_err());
        assert!(
            header_values(HeaderForm::MessageIds, false, &serde_json::json!(["<x@y>"])).is_err()
        );
        assert!(header_values(HeaderForm::Raw, false, &serde_json::json!("a\r\nb")).is_err());
        assert!(header_values(HeaderForm::Raw, true, &serde_json::json!("a")).is_err());
        let two =
            header_values(HeaderForm::Text, true, &serde_json::json!(["a", "b"])).expect("ok");
        assert_eq!(two.len(), 2);
        assert!(
            header_values(HeaderForm::Text, false, &Value::Null)
                .expect("ok")
                .is_empty()
        );
    }
}
