//! JMAP data types that cannot be invalid (RFC 8620 §1.2–§1.4): each is parsed once at the
//! boundary and carried as a value that is valid by construction.
//!
//! String forms of ids made from store numbers use one compact, canonical encoding: a prefix
//! letter followed by the number in lowercase base32hex (`0-9a-v`, RFC 4648 §7 alphabet) with
//! no leading zeros. One number has exactly one string form, and every form is a valid JMAP
//! `Id` that starts with a letter (RFC 8620 §1.2 recommends ids that do not start with a dash
//! and are not all digits).
//! - `AccountId`: `"a"` + compact(account_id), e.g. account 1 → `"a1"`, 1000 → `"av8"`.
//! - `State`: `"s"` + compact(change-log version).
//! - `BlobId`: `"G"` + 64 lowercase hex digits of the SHA-256 digest.
//! - object ids: a per-type letter + compact(store id) (see [`Id::from_number`]).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::store::commit::LogPosition;

mod blob_id;
pub use blob_id::{BlobId, BlobSection, TransferEncoding};

/// The lowercase base32hex alphabet; numeric order equals string order for equal lengths.
const COMPACT_ALPHABET: &[u8; 32] = b"0123456789abcdefghijklmnopqrstuv";

fn compact_encode(prefix: char, mut number: u64, out: &mut String) {
    out.push(prefix);
    let mut digits = [0u8; 13];
    let mut len = 0;
    loop {
        digits[len] = COMPACT_ALPHABET[(number & 31) as usize];
        len += 1;
        number >>= 5;
        if number == 0 {
            break;
        }
    }
    for digit in digits[..len].iter().rev() {
        out.push(*digit as char);
    }
}

fn compact_decode(prefix: char, text: &str) -> Option<u64> {
    let digits = text.strip_prefix(prefix)?.as_bytes();
    // Canonical form only: no empty number, no leading zero (except "0" itself).
    if digits.is_empty() || (digits.len() > 1 && digits[0] == b'0') || digits.len() > 13 {
        return None;
    }
    let mut number: u64 = 0;
    for &digit in digits {
        let value = match digit {
            b'0'..=b'9' => digit - b'0',
            b'a'..=b'v' => digit - b'a' + 10,
            _ => return None,
        };
        number = number.checked_mul(32)?.checked_add(u64::from(value))?;
    }
    Some(number)
}

/// Why a string is not a valid value of one of these types.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind}: {reason}")]
pub struct TypeError {
    pub kind: &'static str,
    pub reason: &'static str,
}

fn type_error(kind: &'static str, reason: &'static str) -> TypeError {
    TypeError { kind, reason }
}

/// RFC 8620 §1.2: an `Id` is 1–255 octets from the URL-safe base64 alphabet (`A-Za-z0-9-_`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Id(String);

impl Id {
    pub const MAX_LEN: usize = 255;

    pub fn parse(text: &str) -> Result<Id, TypeError> {
        if text.is_empty() {
            return Err(type_error("Id", "empty"));
        }
        if text.len() > Id::MAX_LEN {
            return Err(type_error("Id", "longer than 255 octets"));
        }
        if !text.bytes().all(is_id_byte) {
            return Err(type_error("Id", "outside the URL-safe base64 alphabet"));
        }
        Ok(Id(text.to_owned()))
    }

    /// The id of an object whose store id is `number`, with a per-type prefix letter.
    pub fn from_number(prefix: char, number: u64) -> Id {
        debug_assert!(prefix.is_ascii_alphabetic());
        let mut text = String::with_capacity(14);
        compact_encode(prefix, number, &mut text);
        Id(text)
    }

    /// The store id behind an id made by [`Id::from_number`] with the same prefix.
    pub fn to_number(&self, prefix: char) -> Option<u64> {
        compact_decode(prefix, &self.0)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

fn is_id_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_'
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for Id {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Id, D::Error> {
        let text = std::borrow::Cow::<str>::deserialize(deserializer)?;
        Id::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// A JMAP account id: the directory's `u32` account number in the compact form `"a" + n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AccountId(u32);

impl AccountId {
    pub fn new(account_id: u32) -> AccountId {
        AccountId(account_id)
    }

    pub fn parse(text: &str) -> Result<AccountId, TypeError> {
        let number = compact_decode('a', text).ok_or(type_error("AccountId", "not a1…"))?;
        u32::try_from(number)
            .map(AccountId)
            .map_err(|_| type_error("AccountId", "out of range"))
    }

    pub fn number(self) -> u32 {
        self.0
    }

    pub fn to_id(self) -> Id {
        Id::from_number('a', u64::from(self.0))
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut text = String::with_capacity(8);
        compact_encode('a', u64::from(self.0), &mut text);
        f.write_str(&text)
    }
}

impl Serialize for AccountId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// A JMAP state string (RFC 8620 §5.1): opaque to clients, here a position in a data type's
/// change log in the compact form `"s" + version`, or `"s" + version + "." + within` for the
/// intermediate states that `/changes` hands out when `maxChanges` cuts inside one commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct State(LogPosition);

impl State {
    pub fn new(version: u64) -> State {
        State(LogPosition::at(version))
    }

    pub fn at(position: LogPosition) -> State {
        State(position)
    }

    /// `None` for a string this server never produced: callers answer
    /// `cannotCalculateChanges` (or `stateMismatch`), never a parse error.
    pub fn parse(text: &str) -> Option<State> {
        match text.split_once('.') {
            None => compact_decode('s', text).map(State::new),
            Some((version_text, within_text)) => {
                let version = compact_decode('s', version_text)?;
                let within = compact_decode('w', &format!("w{within_text}"))?;
                // Canonical form only: a whole-commit position never carries ".0".
                let within = u32::try_from(within).ok().filter(|within| *within > 0)?;
                Some(State(LogPosition { version, within }))
            }
        }
    }

    pub fn position(self) -> LogPosition {
        self.0
    }

    pub fn version(self) -> u64 {
        self.0.version
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut text = String::with_capacity(24);
        compact_encode('s', self.0.version, &mut text);
        if self.0.within > 0 {
            compact_encode('.', u64::from(self.0.within), &mut text);
        }
        f.write_str(&text)
    }
}

impl Serialize for State {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// A reference to an object created earlier in the same request: `"#" + creation id`
/// (RFC 8620 §5.3). The creation id itself has the `Id` syntax.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdOrReference {
    Id(Id),
    Reference(Id),
}

impl IdOrReference {
    pub fn parse(text: &str) -> Result<IdOrReference, TypeError> {
        match text.strip_prefix('#') {
            Some(creation_id) => Id::parse(creation_id).map(IdOrReference::Reference),
            None => Id::parse(text).map(IdOrReference::Id),
        }
    }
}

/// RFC 8620 §1.3: an `UnsignedInt` is an integer in `0..=2^53-1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize)]
pub struct UnsignedInt(u64);

/// RFC 8620 §1.3: the largest integer a JSON number represents exactly.
pub const MAX_SAFE_INTEGER: i64 = (1 << 53) - 1;

impl UnsignedInt {
    pub const MAX: UnsignedInt = UnsignedInt(MAX_SAFE_INTEGER as u64);

    pub fn new(value: u64) -> Option<UnsignedInt> {
        (value <= UnsignedInt::MAX.0).then_some(UnsignedInt(value))
    }

    /// Saturates at 2^53-1 (counts that large are not reachable in practice).
    pub fn saturating(value: u64) -> UnsignedInt {
        UnsignedInt(value.min(UnsignedInt::MAX.0))
    }

    pub fn from_json(value: &serde_json::Value) -> Option<UnsignedInt> {
        value.as_u64().and_then(UnsignedInt::new)
    }

    pub fn get(self) -> u64 {
        self.0
    }
}

/// RFC 8620 §1.3: an `Int` is an integer in `-2^53+1..=2^53-1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize)]
pub struct Int(i64);

impl Int {
    pub fn new(value: i64) -> Option<Int> {
        (-MAX_SAFE_INTEGER..=MAX_SAFE_INTEGER)
            .contains(&value)
            .then_some(Int(value))
    }

    pub fn from_json(value: &serde_json::Value) -> Option<Int> {
        value.as_i64().and_then(Int::new)
    }

    pub fn get(self) -> i64 {
        self.0
    }
}

/// RFC 8620 §1.4: a `UTCDate` is an RFC 3339 `date-time` with the time-offset `Z`; fractional
/// seconds are only allowed when non-zero (so there is one form per instant), and letters are
/// uppercase. Held as seconds and nanoseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UtcDate {
    seconds: i64,
    nanos: u32,
}

impl UtcDate {
    pub fn from_unix(seconds: i64, nanos: u32) -> Option<UtcDate> {
        // Four-digit years only (0000–9999), as RFC 3339 dates allow.
        const MIN: i64 = -62_167_219_200; // 0000-01-01T00:00:00Z
        const MAX: i64 = 253_402_300_799; // 9999-12-31T23:59:59Z
        ((MIN..=MAX).contains(&seconds) && nanos < 1_000_000_000)
            .then_some(UtcDate { seconds, nanos })
    }

    pub fn unix_seconds(self) -> i64 {
        self.seconds
    }

    pub fn now() -> UtcDate {
        let since_epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        UtcDate {
            seconds: i64::try_from(since_epoch.as_secs()).unwrap_or(0),
            nanos: 0,
        }
    }

    pub fn parse(text: &str) -> Result<UtcDate, TypeError> {
        let invalid = |reason| type_error("UTCDate", reason);
        let bytes = text.as_bytes();
        if bytes.len() < 20 || bytes[bytes.len() - 1] != b'Z' {
            return Err(invalid("not YYYY-MM-DDTHH:MM:SS[.fff]Z"));
        }
        let shape_ok = bytes[4] == b'-'
            && bytes[7] == b'-'
            && bytes[10] == b'T'
            && bytes[13] == b':'
            && bytes[16] == b':';
        if !shape_ok {
            return Err(invalid("not YYYY-MM-DDTHH:MM:SS[.fff]Z"));
        }
        let number = |range: std::ops::Range<usize>| -> Result<i64, TypeError> {
            let digits = &bytes[range];
            if !digits.iter().all(u8::is_ascii_digit) {
                return Err(invalid("non-digit in a numeric field"));
            }
            Ok(digits
                .iter()
                .fold(0, |acc, d| acc * 10 + i64::from(d - b'0')))
        };
        let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
        let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
        if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
            return Err(invalid("no such calendar date"));
        }
        // Leap seconds are not representable as Unix time; refuse them rather than guess.
        if hour > 23 || minute > 59 || second > 59 {
            return Err(invalid("no such time of day"));
        }
        let fraction = &bytes[19..bytes.len() - 1];
        let nanos = match fraction.split_first() {
            None => 0,
            Some((b'.', digits)) => {
                if digits.is_empty() || digits.len() > 9 || !digits.iter().all(u8::is_ascii_digit) {
                    return Err(invalid("bad fractional seconds"));
                }
                // RFC 8620 §1.4: fractional seconds MUST NOT be zero; no trailing zeros keeps
                // one string per instant.
                if digits.last() == Some(&b'0') {
                    return Err(invalid("fractional seconds with trailing zero"));
                }
                let value = digits
                    .iter()
                    .fold(0u32, |acc, d| acc * 10 + u32::from(d - b'0'));
                value * 10u32.pow(9 - digits.len() as u32)
            }
            Some(_) => return Err(invalid("not YYYY-MM-DDTHH:MM:SS[.fff]Z")),
        };
        let days = days_from_civil(year, month, day);
        let seconds = days * 86_400 + hour * 3600 + minute * 60 + second;
        UtcDate::from_unix(seconds, nanos).ok_or(invalid("out of range"))
    }
}

fn is_leap_year(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap_year(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The inverse of [`days_from_civil`].
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let shifted = days + 719_468;
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

impl fmt::Display for UtcDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let days = self.seconds.div_euclid(86_400);
        let second_of_day = self.seconds.rem_euclid(86_400);
        let (year, month, day) = civil_from_days(days);
        write!(
            f,
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
            second_of_day / 3600,
            second_of_day / 60 % 60,
            second_of_day % 60
        )?;
        if self.nanos != 0 {
            let fraction = format!("{:09}", self.nanos);
            write!(f, ".{}", fraction.trim_end_matches('0'))?;
        }
        f.write_str("Z")
    }
}

impl Serialize for UtcDate {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for UtcDate {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<UtcDate, D::Error> {
        let text = std::borrow::Cow::<str>::deserialize(deserializer)?;
        UtcDate::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_accepts_only_the_rfc_alphabet_and_length() {
        assert!(Id::parse("abc-_XYZ09").is_ok());
        assert!(Id::parse("").is_err());
        assert!(Id::parse("a b").is_err());
        assert!(Id::parse("a+b").is_err());
        assert!(Id::parse("é").is_err());
        assert!(Id::parse(&"x".repeat(255)).is_ok());
        assert!(Id::parse(&"x".repeat(256)).is_err());
    }

    #[test]
    fn compact_ids_round_trip_and_are_canonical() {
        for number in [0, 1, 31, 32, 1000, u64::from(u32::MAX), u64::MAX] {
            let id = Id::from_number('m', number);
            assert!(Id::parse(id.as_str()).is_ok(), "{id}");
            assert_eq!(id.to_number('m'), Some(number));
            assert_eq!(id.to_number('x'), None);
        }
        assert_eq!(Id::from_number('m', 1000).as_str(), "mv8");
        assert_eq!(compact_decode('m', "m01"), None, "leading zero");
        assert_eq!(compact_decode('m', "m"), None);
        assert_eq!(compact_decode('m', "mw"), None, "outside alphabet");
        assert_eq!(compact_decode('m', "mvvvvvvvvvvvvv"), None, "overflow");
    }

    #[test]
    fn account_ids_round_trip() {
        for number in [0u32, 1, 1000, u32::MAX] {
            let text = AccountId::new(number).to_string();
            assert_eq!(AccountId::parse(&text), Ok(AccountId::new(number)));
            assert_eq!(AccountId::new(number).to_id().as_str(), text);
        }
        assert_eq!(AccountId::new(1).to_string(), "a1");
        assert!(AccountId::parse("a4000000").is_err(), "above u32::MAX");
        assert!(AccountId::parse("b1").is_err());
        assert!(AccountId::parse("A1").is_err());
    }

    #[test]
    fn states_round_trip() {
        assert_eq!(
            State::parse(&State::new(77).to_string()),
            Some(State::new(77))
        );
        assert_eq!(State::parse("garbage"), None);
    }

    #[test]
    fn blob_ids_round_trip() {
        let mut digest = [0u8; 32];
        digest
            .iter_mut()
            .enumerate()
            .for_each(|(i, b)| *b = (i * 37) as u8);
        let blob_id = BlobId::from_digest(digest);
        let text = blob_id.to_string();
        assert_eq!(text.len(), 65);
        assert!(Id::parse(&text).is_ok());
        assert_eq!(BlobId::parse(&text), Ok(blob_id));
        assert!(BlobId::parse(&text.to_uppercase()).is_err());
        assert!(BlobId::parse(&text[..64]).is_err());
        assert!(BlobId::parse(&format!("H{}", &text[1..])).is_err());
    }

    #[test]
    fn part_blob_ids_round_trip_and_compose() {
        let whole = BlobId::from_digest([7u8; 32]);
        let section = |start, end, encoding| BlobSection {
            start,
            end,
            encoding,
        };
        let part = whole
            .with_section(section(100, 1000, TransferEncoding::Base64))
            .unwrap();
        let text = part.to_string();
        assert!(Id::parse(&text).is_ok());
        assert!(text.ends_with("_B34xs4"), "{text}");
        assert_eq!(BlobId::parse(&text), Ok(part));
        assert_eq!(part.stored(), whole);
        assert!(part.is_part() && !whole.is_part());
        // A part of an identity-encoded part folds into one section of the stored blob.
        let message = whole
            .with_section(section(10, 500, TransferEncoding::Identity))
            .unwrap();
        let inner = message
            .with_section(section(5, 20, TransferEncoding::QuotedPrintable))
            .unwrap();
        assert_eq!(
            inner.sections(),
            &[section(15, 30, TransferEncoding::QuotedPrintable)]
        );
        assert!(
            message
                .with_section(section(5, 600, TransferEncoding::Identity))
                .is_none()
        );
        // Below a base64 section, offsets index the decoded bytes: a second section.
        let nested = part
            .with_section(section(3, 9, TransferEncoding::Identity))
            .unwrap();
        assert_eq!(nested.sections().len(), 2);
        assert_eq!(BlobId::parse(&nested.to_string()), Ok(nested));
        // Non-canonical or malformed sections are refused.
        let digest_text = whole.to_string();
        for bad in [
            "_I1x2_B1x2",
            "_B01x2",
            "_Z1x2",
            "_B1",
            "_B1x",
            "_",
            "_B1x2_",
        ] {
            assert!(
                BlobId::parse(&format!("{digest_text}{bad}")).is_err(),
                "{bad}"
            );
        }
        let too_deep = format!("{digest_text}_B1x2_B1x2_B1x2_B1x2");
        assert!(BlobId::parse(&too_deep).is_err());
    }

    #[test]
    fn creation_references() {
        assert_eq!(
            IdOrReference::parse("#k1"),
            Ok(IdOrReference::Reference(Id::parse("k1").unwrap()))
        );
        assert_eq!(
            IdOrReference::parse("k1"),
            Ok(IdOrReference::Id(Id::parse("k1").unwrap()))
        );
        assert!(IdOrReference::parse("#").is_err());
    }

    #[test]
    fn integer_bounds() {
        assert!(UnsignedInt::new(MAX_SAFE_INTEGER as u64).is_some());
        assert!(UnsignedInt::new(MAX_SAFE_INTEGER as u64 + 1).is_none());
        assert!(UnsignedInt::from_json(&serde_json::json!(-1)).is_none());
        assert!(UnsignedInt::from_json(&serde_json::json!(1.5)).is_none());
        assert!(Int::new(-MAX_SAFE_INTEGER).is_some());
        assert!(Int::new(-MAX_SAFE_INTEGER - 1).is_none());
    }

    #[test]
    fn utc_dates_parse_and_format() {
        let date = UtcDate::parse("2014-10-30T06:12:00Z").unwrap();
        assert_eq!(date.unix_seconds(), 1_414_649_520);
        assert_eq!(date.to_string(), "2014-10-30T06:12:00Z");
        let fractional = UtcDate::parse("2014-10-30T06:12:00.25Z").unwrap();
        assert_eq!(fractional.to_string(), "2014-10-30T06:12:00.25Z");
        assert_eq!(
            UtcDate::parse("1970-01-01T00:00:00Z")
                .unwrap()
                .unix_seconds(),
            0
        );
        assert_eq!(
            UtcDate::parse("2000-02-29T23:59:59Z").unwrap().to_string(),
            "2000-02-29T23:59:59Z"
        );
        for bad in [
            "2014-10-30T06:12:00+01:00",
            "2014-10-30t06:12:00Z",
            "2014-10-30T06:12:00.000Z",
            "2014-10-30T06:12:00.Z",
            "2014-02-30T06:12:00Z",
            "1900-02-29T00:00:00Z",
            "2014-10-30T24:00:00Z",
            "2014-10-30T06:12:60Z",
            "2014-1a-30T06:12:00Z",
            "",
            "ZZZZZZZZZZZZZZZZZZZZZZ",
            "2014-10-30T06:12:00.1234567891Z",
        ] {
            assert!(UtcDate::parse(bad).is_err(), "{bad}");
        }
        for days in [-719_468i64, -1, 0, 1, 11_016, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }
}
