//! EmailBodyPart objects given on create (RFC 8621 §4.1.4, §4.6), checked and turned into a
//! plan of MIME parts whose content is text from `bodyValues`, a blob, or sub-parts.

use mail_builder::headers::HeaderType;
use serde_json::{Map, Value};
use std::borrow::Cow;

use super::headers::{HeaderProperty, canonical_name, form_allowed, header_values};

/// One MIME part to write.
#[derive(Debug, Clone)]
pub struct PartPlan {
    /// `type/subtype`, lowercase.
    pub media_type: String,
    /// The client's own `header:Content-Type` (written as given instead of `media_type`).
    pub content_type_header: Option<HeaderType<'static>>,
    pub charset: Option<String>,
    pub disposition: Option<String>,
    pub name: Option<String>,
    pub cid: Option<String>,
    pub language: Vec<String>,
    pub location: Option<String>,
    /// Other header fields given as `header:*` properties, in order.
    pub headers: Vec<(Cow<'static, str>, HeaderType<'static>)>,
    /// Lowercase names of every `header:*` field of this part (for the root-part rule).
    pub header_names: Vec<String>,
    pub content: PartContent,
}

#[derive(Debug, Clone)]
pub enum PartContent {
    /// Text from `bodyValues`.
    Text(String),
    /// The content of a blob, by its id as the client gave it.
    Blob(String),
    Multipart(Vec<PartPlan>),
}

impl PartPlan {
    /// Every blob id the part and its sub-parts reference, in order.
    pub fn blob_ids<'a>(&'a self, into: &mut Vec<&'a str>) {
        match &self.content {
            PartContent::Blob(id) => into.push(id),
            PartContent::Multipart(parts) => parts.iter().for_each(|part| part.blob_ids(into)),
            PartContent::Text(_) => {}
        }
    }

    /// An attachment the HTML body shows (it has a cid and is not marked `attachment`):
    /// it goes with the HTML into multipart/related.
    pub fn is_inline_with_cid(&self) -> bool {
        self.cid.is_some()
            && !self
                .disposition
                .as_deref()
                .is_some_and(|disposition| disposition.eq_ignore_ascii_case("attachment"))
    }
}

/// The part properties that stand for a header field, with that field's lowercase name.
const PROPERTY_FIELDS: &[(&str, &str)] = &[
    ("type", "content-type"),
    ("charset", "content-type"),
    ("disposition", "content-disposition"),
    ("name", "content-disposition"),
    ("cid", "content-id"),
    ("language", "content-language"),
    ("location", "content-location"),
];

const PART_PROPERTIES: &[&str] = &[
    "partId",
    "blobId",
    "size",
    "name",
    "type",
    "charset",
    "disposition",
    "cid",
    "language",
    "location",
    "subParts",
];

/// Reads parts; `body_values` maps partId → text.
pub struct PartReader<'a> {
    pub body_values: &'a Map<String, Value>,
}

impl PartReader<'_> {
    /// Checks one EmailBodyPart at `path` (for error descriptions). `default_type` is the
    /// type of a leaf the client gives none for; `None`: text/plain for text from
    /// `bodyValues`, application/octet-stream for a blob.
    pub fn read(
        &self,
        value: &Value,
        path: &str,
        default_type: Option<&str>,
    ) -> Result<PartPlan, String> {
        self.read_at_depth(value, path, default_type, 0)
    }

    fn read_at_depth(
        &self,
        value: &Value,
        path: &str,
        default_type: Option<&str>,
        depth: usize,
    ) -> Result<PartPlan, String> {
        // Deeper than any real message; bounds the recursion on hostile input.
        const MAX_DEPTH: usize = 32;
        if depth > MAX_DEPTH {
            return Err(format!("{path}: body parts nested too deeply"));
        }
        let Value::Object(members) = value else {
            return Err(format!("{path}: an EmailBodyPart must be an object"));
        };
        let at = |what: &str| format!("{path}/{what}");
        let given = |property: &str| members.get(property).filter(|value| !value.is_null());

        // Header fields as properties, each at most once (RFC 8621 §4.6).
        let mut headers = Vec::new();
        let mut header_names: Vec<String> = Vec::new();
        let mut content_type_header = None;
        for (property, value) in members {
            if PART_PROPERTIES.contains(&property.as_str()) {
                continue;
            }
            if property == "headers" {
                return Err(format!(
                    "{}: header fields must be given as header:* properties",
                    at("headers")
                ));
            }
            let Some(header) = HeaderProperty::parse(property) else {
                return Err(format!("{}: unknown EmailBodyPart property", at(property)));
            };
            let lower = header.name.to_ascii_lowercase();
            // RFC 8621 §4.6: Content-Transfer-Encoding is the server's choice.
            if lower == "content-transfer-encoding" {
                return Err(format!(
                    "{}: Content-Transfer-Encoding may not be given",
                    at(property)
                ));
            }
            if !form_allowed(&header.name, header.form) {
                return Err(format!("{}: form not allowed for this field", at(property)));
            }
            // RFC 8621 §4.6: no two properties for the same header field.
            if header_names.contains(&lower)
                || PROPERTY_FIELDS
                    .iter()
                    .any(|(name, field)| *field == lower && given(name).is_some())
            {
                return Err(format!("{}: header field given twice", at(property)));
            }
            let values = header_values(header.form, header.all, value)
                .map_err(|why| format!("{}: {why}", at(property)))?;
            header_names.push(lower.clone());
            if lower == "content-type" {
                content_type_header = Some((media_type_of(value), values));
                continue;
            }
            let name = canonical_name(&header.name);
            headers.extend(values.into_iter().map(|value| (name.clone(), value)));
        }

        let string = |property: &str| -> Result<Option<String>, String> {
            match given(property) {
                None => Ok(None),
                Some(Value::String(text)) => Ok(Some(text.clone())),
                Some(_) => Err(format!("{}: expected a String", at(property))),
            }
        };
        let part_id = string("partId")?;
        let blob_id = string("blobId")?;
        let charset = string("charset")?;
        let disposition = string("disposition")?;
        let name = string("name")?;
        let location = string("location")?;
        let cid = string("cid")?.map(|cid| cid.trim_matches(['<', '>']).to_owned());
        let mut media_type = string("type")?.map(|text| text.to_ascii_lowercase());
        let language = match given("language") {
            None => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| item.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| format!("{}: expected a String[]", at("language")))?,
            Some(_) => return Err(format!("{}: expected a String[]", at("language"))),
        };
        for (property, text) in [
            ("type", media_type.as_deref()),
            ("disposition", disposition.as_deref()),
        ] {
            if let Some(text) = text
                && !is_token_path(text, property == "type")
            {
                return Err(format!("{}: {text:?} is not valid", at(property)));
            }
        }
        for (property, text) in [
            ("name", name.as_deref()),
            ("cid", cid.as_deref()),
            ("location", location.as_deref()),
            ("charset", charset.as_deref()),
        ] {
            if text.is_some_and(|text| text.contains(['\r', '\n'])) {
                return Err(format!("{}: line breaks are not allowed", at(property)));
            }
        }
        if let Some(bad) = cid
            .iter()
            .chain(&charset)
            .find(|text| text.is_empty() || text.contains(char::is_whitespace))
        {
            return Err(format!("{path}: {bad:?} is not a valid cid or charset"));
        }

        let content_type_header = match content_type_header {
            Some((Some(from_header), values)) => {
                media_type = Some(from_header);
                values.into_iter().next()
            }
            Some((None, _)) => {
                return Err(format!(
                    "{}: no media type in the field",
                    at("header:Content-Type")
                ));
            }
            None => None,
        };

        let sub_parts = given("subParts");
        let content = match (part_id, blob_id, sub_parts) {
            (Some(_), Some(_), _) => {
                // RFC 8621 §4.6: partId and blobId MUST NOT both be given.
                return Err(format!("{path}: partId and blobId are both given"));
            }
            (Some(_), _, Some(_)) | (_, Some(_), Some(_)) => {
                return Err(format!(
                    "{path}: a part with subParts has no partId or blobId"
                ));
            }
            (Some(part_id), None, None) => {
                // RFC 8621 §4.6: with a partId, charset and size MUST be omitted.
                if charset.is_some() {
                    return Err(format!("{}: not allowed with a partId", at("charset")));
                }
                if given("size").is_some() {
                    return Err(format!("{}: not allowed with a partId", at("size")));
                }
                let Some(text) = self.body_values.get(&part_id) else {
                    return Err(format!(
                        "{}: {part_id:?} is not in bodyValues",
                        at("partId")
                    ));
                };
                let Some(text) = text.get("value").and_then(Value::as_str) else {
                    return Err(format!("bodyValues/{part_id}: no String value"));
                };
                PartContent::Text(text.to_owned())
            }
            (None, Some(blob_id), None) => {
                if let Some(size) = given("size")
                    && size.as_u64().is_none()
                {
                    return Err(format!("{}: expected an UnsignedInt", at("size")));
                }
                PartContent::Blob(blob_id)
            }
            (None, None, Some(Value::Array(children))) => {
                if charset.is_some() {
                    return Err(format!("{}: a multipart has no charset", at("charset")));
                }
                let mut parts = Vec::with_capacity(children.len());
                for (index, child) in children.iter().enumerate() {
                    let child_path = format!("{path}/subParts/{index}");
                    parts.push(self.read_at_depth(child, &child_path, None, depth + 1)?);
                }
                PartContent::Multipart(parts)
            }
            (None, None, Some(_)) => {
                return Err(format!("{}: expected an EmailBodyPart[]", at("subParts")));
            }
            (None, None, None) => {
                return Err(format!("{path}: needs a partId, a blobId or subParts"));
            }
        };
        let is_multipart = matches!(content, PartContent::Multipart(_));
        let media_type = match media_type {
            Some(media_type) if is_multipart != media_type.starts_with("multipart/") => {
                return Err(format!(
                    "{}: multipart/* types go with subParts, and only they",
                    at("type")
                ));
            }
            Some(media_type) => media_type,
            None => match (&content, default_type) {
                (PartContent::Multipart(_), _) => "multipart/mixed".to_owned(),
                (_, Some(default_type)) => default_type.to_owned(),
                (PartContent::Blob(_), None) => "application/octet-stream".to_owned(),
                (PartContent::Text(_), None) => "text/plain".to_owned(),
            },
        };
        Ok(PartPlan {
            media_type,
            content_type_header,
            charset,
            disposition,
            name,
            cid,
            language,
            location,
            headers,
            header_names,
            content,
        })
    }
}

/// The media type a `header:Content-Type` value names (any form holding a string).
fn media_type_of(value: &Value) -> Option<String> {
    let text = match value {
        Value::String(text) => text.as_str(),
        Value::Array(items) => items.first()?.as_str()?,
        _ => return None,
    };
    let media_type = text.split(';').next()?.trim().to_ascii_lowercase();
    is_token_path(&media_type, true).then_some(media_type)
}

/// An RFC 2045 token, or `token/token` when `with_slash`.
fn is_token_path(text: &str, with_slash: bool) -> bool {
    let is_token = |piece: &str| {
        !piece.is_empty()
            && piece
                .bytes()
                .all(|byte| byte.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?=".contains(&byte))
    };
    if with_slash {
        text.split_once('/')
            .is_some_and(|(kind, subtype)| is_token(kind) && is_token(subtype))
    } else {
        is_token(text)
    }
}

/// Checks `bodyValues` (RFC 8621 §4.6: isEncodingProblem and isTruncated MUST be false or
/// absent).
pub fn check_body_values(value: &Value) -> Result<(), String> {
    let Value::Object(values) = value else {
        return Err("bodyValues must be a String[EmailBodyValue]".into());
    };
    for (part_id, body_value) in values {
        let Value::Object(members) = body_value else {
            return Err(format!("bodyValues/{part_id}: must be an EmailBodyValue"));
        };
        if !matches!(members.get("value"), Some(Value::String(_))) {
            return Err(format!("bodyValues/{part_id}/value: must be a String"));
        }
        for flag in ["isEncodingProblem", "isTruncated"] {
            if !matches!(members.get(flag), None | Some(Value::Bool(false))) {
                return Err(format!(
                    "bodyValues/{part_id}/{flag}: must be false or absent"
                ));
            }
        }
        if let Some(unknown) = members
            .keys()
            .find(|key| !matches!(key.as_str(), "value" | "isEncodingProblem" | "isTruncated"))
        {
            return Err(format!("bodyValues/{part_id}/{unknown}: unknown property"));
        }
    }
    Ok(())
}
