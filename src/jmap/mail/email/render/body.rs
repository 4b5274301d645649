//! EmailBodyPart and EmailBodyValue rendering (RFC 8621 §4.1.4).

use serde_json::{Map, Value, json};

use super::headers::{all_headers, header_value};
use super::{BodyOptions, BodyProperty};
use crate::jmap::types::{BlobId, BlobSection};
use crate::mail::parsed::decode::part_text;
use crate::mail::parsed::{BodyPart, ParsedEmail};

/// Nesting deeper than this is cut from `bodyStructure` (the parser already bounds it).
const MAX_RENDER_DEPTH: usize = 64;

pub(super) struct Context<'a> {
    pub parsed: &'a ParsedEmail,
    pub raw: Option<&'a [u8]>,
    pub message_blob: &'a BlobId,
    pub options: &'a BodyOptions,
}

/// The partId of part `index`: unique within the message, stable across fetches.
pub fn part_id(index: u32) -> String {
    (u64::from(index) + 1).to_string()
}

impl Context<'_> {
    /// The header block of part `index` (`None` without the raw message).
    pub fn header_block(&self, index: u32) -> Option<&[u8]> {
        let part = self.parsed.part(index)?;
        let raw = self.raw?;
        Some(
            raw.get(part.header_start as usize..part.body_start as usize)
                .unwrap_or_default(),
        )
    }

    fn body_bytes(&self, part: &BodyPart) -> Option<&[u8]> {
        let raw = self.raw?;
        Some(
            raw.get(part.body_start as usize..part.body_end as usize)
                .unwrap_or_default(),
        )
    }

    fn needs_raw(&self) -> bool {
        self.options
            .body_properties
            .iter()
            .any(|property| matches!(property, BodyProperty::Headers | BodyProperty::Header(_)))
    }

    /// RFC 8621 §4.1.4 bodyStructure: the whole tree. `subParts` is always given for
    /// multiparts, since without it the structure is lost.
    pub fn body_structure(&self) -> Option<Value> {
        if self.needs_raw() && self.raw.is_none() {
            return None;
        }
        if self.parsed.parts.is_empty() {
            return Some(Value::Null);
        }
        Some(self.render_part(0, true, 0))
    }

    /// textBody, htmlBody, attachments: flat lists of leaf parts.
    pub fn part_list(&self, indexes: &[u32]) -> Option<Value> {
        if self.needs_raw() && self.raw.is_none() {
            return None;
        }
        Some(Value::Array(
            indexes
                .iter()
                .filter(|&&index| self.parsed.part(index).is_some())
                .map(|&index| self.render_part(index, false, 0))
                .collect(),
        ))
    }

    fn render_part(&self, index: u32, with_sub_parts: bool, depth: usize) -> Value {
        let Some(part) = self.parsed.part(index) else {
            return Value::Null;
        };
        let multipart = part.is_multipart();
        let mut object = Map::new();
        for property in &self.options.body_properties {
            let value = match property {
                BodyProperty::PartId => {
                    if multipart {
                        Value::Null
                    } else {
                        Value::String(part_id(index))
                    }
                }
                BodyProperty::BlobId => {
                    if multipart {
                        Value::Null
                    } else {
                        self.part_blob_id(part)
                            .map_or(Value::Null, |id| Value::String(id.to_string()))
                    }
                }
                BodyProperty::Size => json!(part.size),
                BodyProperty::Headers => self
                    .header_block(index)
                    .map_or(Value::Array(Vec::new()), all_headers),
                BodyProperty::Header(header) => {
                    self.header_block(index).map_or(Value::Null, |block| {
                        header_value(block, &header.name, header.form, header.all)
                    })
                }
                BodyProperty::Name => json!(part.name),
                BodyProperty::Type => json!(part.content_type),
                BodyProperty::Charset => json!(part.charset),
                BodyProperty::Disposition => json!(part.disposition),
                BodyProperty::Cid => json!(part.cid),
                BodyProperty::Language => json!(part.language),
                BodyProperty::Location => json!(part.location),
                BodyProperty::SubParts => continue,
            };
            object.insert(property.name().to_owned(), value);
        }
        let wants_sub_parts = with_sub_parts
            || self
                .options
                .body_properties
                .contains(&BodyProperty::SubParts);
        if wants_sub_parts {
            let sub_parts = if multipart && depth < MAX_RENDER_DEPTH {
                Value::Array(
                    part.sub_parts
                        .iter()
                        .map(|&child| self.render_part(child, with_sub_parts, depth + 1))
                        .collect(),
                )
            } else if multipart {
                Value::Array(Vec::new())
            } else {
                Value::Null
            };
            object.insert("subParts".to_owned(), sub_parts);
        }
        Value::Object(object)
    }

    /// The part's blob id: its body range within the message's blob, decoded on download.
    fn part_blob_id(&self, part: &BodyPart) -> Option<BlobId> {
        self.message_blob.with_section(BlobSection {
            start: part.body_start,
            end: part.body_end,
            encoding: part.encoding,
        })
    }

    /// RFC 8621 §4.2 bodyValues: the text/* parts asked for by the fetch options, keyed by
    /// partId; `{}` when none is asked for.
    pub fn body_values(&self) -> Option<Value> {
        let options = self.options;
        let mut indexes: Vec<u32> = Vec::new();
        if options.fetch_all_body_values {
            indexes.extend(
                (0..self.parsed.parts.len() as u32)
                    .filter(|&index| self.parsed.part(index).is_some_and(|part| part.is_text())),
            );
        } else {
            if options.fetch_text_body_values {
                indexes.extend_from_slice(&self.parsed.text_body);
            }
            if options.fetch_html_body_values {
                indexes.extend_from_slice(&self.parsed.html_body);
            }
        }
        let mut values = Map::new();
        for index in indexes {
            let Some(part) = self.parsed.part(index) else {
                continue;
            };
            if !part.is_text() || values.contains_key(&part_id(index)) {
                continue;
            }
            let body = self.body_bytes(part)?;
            let (mut text, decode_problem) =
                part_text(body, part.encoding, part.charset.as_deref());
            // RFC 8621 §4.2: the value MUST be cut to maxBodyValueBytes; the server's own cap
            // (issue 13) cuts too, and isTruncated says so either way.
            let is_truncated = truncate(
                &mut text,
                options.effective_max_body_value_bytes(),
                part.content_type == "text/html",
            );
            values.insert(
                part_id(index),
                json!({
                    "value": text,
                    "isEncodingProblem": part.encoding_problem || decode_problem,
                    "isTruncated": is_truncated,
                }),
            );
        }
        Some(Value::Object(values))
    }
}

/// RFC 8621 §4.2 maxBodyValueBytes: cuts `text` to at most `max_bytes` octets on a character
/// boundary (and, for HTML, not inside a tag); 0 means no limit. Returns whether it cut.
pub fn truncate(text: &mut String, max_bytes: u64, is_html: bool) -> bool {
    let Ok(max_bytes) = usize::try_from(max_bytes) else {
        return false;
    };
    if max_bytes == 0 || text.len() <= max_bytes {
        return false;
    }
    let mut cut = max_bytes;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    if is_html
        && let Some(open) = text[..cut].rfind('<')
        && text[open..cut].find('>').is_none()
    {
        cut = open;
    }
    text.truncate(cut);
    true
}
