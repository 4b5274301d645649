//! The stored form of [`ParsedEmail`] (`ACCT_EMAIL_META`, see `schema/mail.md`): a compact
//! binary encoding, tag byte `0x01` first. Values written before it are JSON objects (first
//! byte `{`) and are still read, so existing stores need no migration.
//!
//! Why binary (issue 3, store overhead): the JSON form repeated every member name in every
//! part (≈ 990 bytes per 6 KB message); this one writes integers as LEB128 varints and
//! strings as length + UTF-8, in a fixed member order (≈ 485 bytes, 49% of the JSON, for the
//! bench's messages; 67% on the test corpus, whose long header values dominate).
//!
//! Layout, in order (`opt` = one byte 0/1 then the value; `list` = varint count then items;
//! `optlist` = varint 0 for none, else count + 1 then items):
//! size; optlist message_id, in_reply_to, references; opt subject; optlist of addresses
//! (opt name, email) for from, to, cc, bcc, sender, reply_to; opt sent_at; opt sent_at_unix
//! (zigzag varint); has_attachment (byte); preview; list of parts (header_start, body_start,
//! body_end, encoding byte 0 identity / 1 base64 / 2 quoted-printable, size, content_type,
//! opt charset, name, disposition, cid, optlist language, opt location, list sub_parts,
//! encoding_problem byte); list text_body, html_body, attachments.

use super::{BodyPart, EmailAddress, ParsedEmail};
use crate::jmap::types::TransferEncoding;

/// First byte of the binary form.
const FORMAT_BINARY: u8 = 0x01;
/// First byte of the JSON form written by earlier versions.
const FORMAT_JSON: u8 = b'{';

/// Why stored metadata could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("stored Email metadata: {0}")]
pub struct MetadataError(String);

impl ParsedEmail {
    /// The stored form (binary).
    pub fn encode_stored(&self) -> Vec<u8> {
        let mut out = Writer(Vec::with_capacity(256));
        out.byte(FORMAT_BINARY);
        out.varint(self.size);
        for list in [&self.message_id, &self.in_reply_to, &self.references] {
            out.opt_strings(list.as_deref());
        }
        out.opt_str(self.subject.as_deref());
        for addresses in [
            &self.from,
            &self.to,
            &self.cc,
            &self.bcc,
            &self.sender,
            &self.reply_to,
        ] {
            out.opt_addresses(addresses.as_deref());
        }
        out.opt_str(self.sent_at.as_deref());
        match self.sent_at_unix {
            Some(seconds) => {
                out.byte(1);
                out.varint(((seconds << 1) ^ (seconds >> 63)) as u64);
            }
            None => out.byte(0),
        }
        out.byte(u8::from(self.has_attachment));
        out.str(&self.preview);
        out.varint(self.parts.len() as u64);
        for part in &self.parts {
            out.part(part);
        }
        for indexes in [&self.text_body, &self.html_body, &self.attachments] {
            out.indexes(indexes);
        }
        out.0
    }

    /// Reads either stored form.
    pub fn decode_stored(bytes: &[u8]) -> Result<ParsedEmail, MetadataError> {
        match bytes.first() {
            Some(&FORMAT_BINARY) => {
                let mut input = Reader { bytes, at: 1 };
                let parsed = input.parsed()?;
                if input.at != bytes.len() {
                    return Err(MetadataError("trailing bytes".to_owned()));
                }
                Ok(parsed)
            }
            Some(&FORMAT_JSON) => {
                serde_json::from_slice(bytes).map_err(|error| MetadataError(error.to_string()))
            }
            _ => Err(MetadataError("unknown format".to_owned())),
        }
    }
}

struct Writer(Vec<u8>);

impl Writer {
    fn byte(&mut self, byte: u8) {
        self.0.push(byte);
    }

    fn varint(&mut self, mut value: u64) {
        while value >= 0x80 {
            self.0.push((value as u8) | 0x80);
            value >>= 7;
        }
        self.0.push(value as u8);
    }

    fn str(&mut self, text: &str) {
        self.varint(text.len() as u64);
        self.0.extend_from_slice(text.as_bytes());
    }

    fn opt_str(&mut self, text: Option<&str>) {
        match text {
            Some(text) => {
                self.byte(1);
                self.str(text);
            }
            None => self.byte(0),
        }
    }

    fn opt_strings(&mut self, list: Option<&[String]>) {
        match list {
            Some(list) => {
                self.varint(list.len() as u64 + 1);
                for item in list {
                    self.str(item);
                }
            }
            None => self.varint(0),
        }
    }

    fn opt_addresses(&mut self, list: Option<&[EmailAddress]>) {
        match list {
            Some(list) => {
                self.varint(list.len() as u64 + 1);
                for address in list {
                    self.opt_str(address.name.as_deref());
                    self.str(&address.email);
                }
            }
            None => self.varint(0),
        }
    }

    fn indexes(&mut self, indexes: &[u32]) {
        self.varint(indexes.len() as u64);
        for index in indexes {
            self.varint(u64::from(*index));
        }
    }

    fn part(&mut self, part: &BodyPart) {
        self.varint(u64::from(part.header_start));
        self.varint(u64::from(part.body_start));
        self.varint(u64::from(part.body_end));
        self.byte(match part.encoding {
            TransferEncoding::Identity => 0,
            TransferEncoding::Base64 => 1,
            TransferEncoding::QuotedPrintable => 2,
        });
        self.varint(part.size);
        self.str(&part.content_type);
        for text in [&part.charset, &part.name, &part.disposition, &part.cid] {
            self.opt_str(text.as_deref());
        }
        self.opt_strings(part.language.as_deref());
        self.opt_str(part.location.as_deref());
        self.indexes(&part.sub_parts);
        self.byte(u8::from(part.encoding_problem));
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

fn truncated() -> MetadataError {
    MetadataError("truncated".to_owned())
}

impl Reader<'_> {
    fn byte(&mut self) -> Result<u8, MetadataError> {
        let byte = *self.bytes.get(self.at).ok_or_else(truncated)?;
        self.at += 1;
        Ok(byte)
    }

    fn flag(&mut self) -> Result<bool, MetadataError> {
        match self.byte()? {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(MetadataError(format!("bad flag {other}"))),
        }
    }

    fn varint(&mut self) -> Result<u64, MetadataError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.byte()?;
            value |= u64::from(byte & 0x7F) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(MetadataError("varint too long".to_owned()))
    }

    fn u32(&mut self) -> Result<u32, MetadataError> {
        u32::try_from(self.varint()?).map_err(|_| MetadataError("offset overflow".to_owned()))
    }

    /// A count of items that each take at least one byte: never more than what is left, so
    /// a corrupt count cannot make us allocate.
    fn count(&mut self) -> Result<usize, MetadataError> {
        let count = usize::try_from(self.varint()?).map_err(|_| truncated())?;
        if count > self.bytes.len() - self.at {
            return Err(truncated());
        }
        Ok(count)
    }

    fn string(&mut self) -> Result<String, MetadataError> {
        let length = self.count()?;
        let text = &self.bytes[self.at..self.at + length];
        self.at += length;
        String::from_utf8(text.to_vec()).map_err(|_| MetadataError("bad UTF-8".to_owned()))
    }

    fn opt_string(&mut self) -> Result<Option<String>, MetadataError> {
        if self.flag()? {
            self.string().map(Some)
        } else {
            Ok(None)
        }
    }

    /// `optlist` count: `None`, or the number of items.
    fn opt_count(&mut self) -> Result<Option<usize>, MetadataError> {
        match self.count()? {
            0 => Ok(None),
            count => Ok(Some(count - 1)),
        }
    }

    fn opt_strings(&mut self) -> Result<Option<Vec<String>>, MetadataError> {
        let Some(count) = self.opt_count()? else {
            return Ok(None);
        };
        (0..count)
            .map(|_| self.string())
            .collect::<Result<_, _>>()
            .map(Some)
    }

    fn opt_addresses(&mut self) -> Result<Option<Vec<EmailAddress>>, MetadataError> {
        let Some(count) = self.opt_count()? else {
            return Ok(None);
        };
        let mut list = Vec::with_capacity(count);
        for _ in 0..count {
            let name = self.opt_string()?;
            let email = self.string()?;
            list.push(EmailAddress { name, email });
        }
        Ok(Some(list))
    }

    fn indexes(&mut self) -> Result<Vec<u32>, MetadataError> {
        let count = self.count()?;
        (0..count).map(|_| self.u32()).collect()
    }

    fn part(&mut self) -> Result<BodyPart, MetadataError> {
        let header_start = self.u32()?;
        let body_start = self.u32()?;
        let body_end = self.u32()?;
        let encoding = match self.byte()? {
            0 => TransferEncoding::Identity,
            1 => TransferEncoding::Base64,
            2 => TransferEncoding::QuotedPrintable,
            other => return Err(MetadataError(format!("bad transfer encoding {other}"))),
        };
        Ok(BodyPart {
            header_start,
            body_start,
            body_end,
            encoding,
            size: self.varint()?,
            content_type: self.string()?,
            charset: self.opt_string()?,
            name: self.opt_string()?,
            disposition: self.opt_string()?,
            cid: self.opt_string()?,
            language: self.opt_strings()?,
            location: self.opt_string()?,
            sub_parts: self.indexes()?,
            encoding_problem: self.flag()?,
        })
    }

    fn parsed(&mut self) -> Result<ParsedEmail, MetadataError> {
        let size = self.varint()?;
        let message_id = self.opt_strings()?;
        let in_reply_to = self.opt_strings()?;
        let references = self.opt_strings()?;
        let subject = self.opt_string()?;
        let from = self.opt_addresses()?;
        let to = self.opt_addresses()?;
        let cc = self.opt_addresses()?;
        let bcc = self.opt_addresses()?;
        let sender = self.opt_addresses()?;
        let reply_to = self.opt_addresses()?;
        let sent_at = self.opt_string()?;
        let sent_at_unix = if self.flag()? {
            let zigzag = self.varint()?;
            Some((zigzag >> 1) as i64 ^ -((zigzag & 1) as i64))
        } else {
            None
        };
        let has_attachment = self.flag()?;
        let preview = self.string()?;
        let count = self.count()?;
        let parts = (0..count)
            .map(|_| self.part())
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ParsedEmail {
            size,
            message_id,
            in_reply_to,
            references,
            subject,
            from,
            to,
            cc,
            bcc,
            sender,
            reply_to,
            sent_at,
            sent_at_unix,
            has_attachment,
            preview,
            parts,
            text_body: self.indexes()?,
            html_body: self.indexes()?,
            attachments: self.indexes()?,
        })
    }
}
