//! Blob ids (RFC 8620 §6.1): a stored blob's SHA-256, or a MIME part of a stored message as
//! byte-range sections over it (RFC 8621 §4.1.4), valid by construction.

use std::fmt;

use serde::{Deserialize, Serialize, Serializer};

use super::{TypeError, compact_decode, compact_encode, type_error};

/// How a section of a blob is transfer-encoded (RFC 2045 §6): its bytes are decoded with this
/// before they are served or parsed.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize,
)]
pub enum TransferEncoding {
    /// 7bit, 8bit, binary, or anything unknown: the octets as they are.
    #[default]
    Identity,
    Base64,
    QuotedPrintable,
}

impl TransferEncoding {
    fn letter(self) -> char {
        match self {
            TransferEncoding::Identity => 'I',
            TransferEncoding::Base64 => 'B',
            TransferEncoding::QuotedPrintable => 'Q',
        }
    }

    fn from_letter(letter: u8) -> Option<TransferEncoding> {
        match letter {
            b'I' => Some(TransferEncoding::Identity),
            b'B' => Some(TransferEncoding::Base64),
            b'Q' => Some(TransferEncoding::QuotedPrintable),
            _ => None,
        }
    }
}

/// A byte range of a blob (or of the decoded previous section) holding a MIME part's body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct BlobSection {
    pub start: u32,
    pub end: u32,
    pub encoding: TransferEncoding,
}

/// A blob id. The whole content of a stored blob is `"G"` + 64 lowercase hex digits of its
/// SHA-256 digest. A MIME part of a stored message (RFC 8621 §4.1.4: each EmailBodyPart has a
/// blobId for its decoded octets) appends one section per nesting level:
/// `"_" + encoding letter (I, B, Q) + compact(start) + "x" + compact(end - start)`, where
/// the offsets of the first section index the stored blob and those of each later section
/// index the decoded bytes of the one before. Only the stored blob is access-checked and
/// counted; a part id is readable exactly by those who may read its message.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlobId {
    digest: [u8; 32],
    /// Only `sections[..depth]` are meaningful; the rest stay at their default so derived
    /// equality and hashing see one value per id.
    sections: [BlobSection; BlobId::MAX_SECTIONS],
    depth: u8,
}

impl BlobId {
    /// Enough for a part of a message attached (base64-encoded) to a message attached to a
    /// message; identity-encoded levels merge into their parent and take no slot.
    pub const MAX_SECTIONS: usize = 3;

    pub fn from_digest(digest: [u8; 32]) -> BlobId {
        BlobId {
            digest,
            sections: [BlobSection::default(); BlobId::MAX_SECTIONS],
            depth: 0,
        }
    }

    /// The digest of the stored blob that holds the content (the whole message, for a part).
    pub fn digest(&self) -> &[u8; 32] {
        &self.digest
    }

    /// Empty for a whole stored blob.
    pub fn sections(&self) -> &[BlobSection] {
        &self.sections[..usize::from(self.depth)]
    }

    pub fn is_part(&self) -> bool {
        self.depth > 0
    }

    /// The whole stored blob behind this id.
    pub fn stored(&self) -> BlobId {
        BlobId::from_digest(self.digest)
    }

    /// The id of `section` of the (decoded) content of this id. An identity-encoded innermost
    /// section absorbs the new one (its offsets then index the same bytes); `None` when the
    /// nesting is deeper than [`BlobId::MAX_SECTIONS`] or the range is not inside the last one.
    pub fn with_section(&self, section: BlobSection) -> Option<BlobId> {
        if section.start > section.end {
            return None;
        }
        let mut id = *self;
        if let Some(last) = id.sections().last().copied()
            && last.encoding == TransferEncoding::Identity
        {
            let start = last.start.checked_add(section.start)?;
            let end = last.start.checked_add(section.end)?;
            if end > last.end {
                return None;
            }
            id.sections[usize::from(id.depth) - 1] = BlobSection {
                start,
                end,
                encoding: section.encoding,
            };
            return Some(id);
        }
        let slot = id.sections.get_mut(usize::from(self.depth))?;
        *slot = section;
        id.depth += 1;
        Some(id)
    }

    pub fn parse(text: &str) -> Result<BlobId, TypeError> {
        let (whole, mut rest) = text.split_at_checked(65).unwrap_or((text, ""));
        let hex = whole
            .strip_prefix('G')
            .ok_or(type_error("BlobId", "missing G prefix"))?
            .as_bytes();
        if hex.len() != 64 {
            return Err(type_error("BlobId", "not 64 hex digits"));
        }
        let mut digest = [0u8; 32];
        for (byte, pair) in digest.iter_mut().zip(hex.chunks_exact(2)) {
            let high = hex_value(pair[0]).ok_or(type_error("BlobId", "not lowercase hex"))?;
            let low = hex_value(pair[1]).ok_or(type_error("BlobId", "not lowercase hex"))?;
            *byte = (high << 4) | low;
        }
        let mut id = BlobId::from_digest(digest);
        let bad_section = || type_error("BlobId", "malformed part section");
        while !rest.is_empty() {
            let section_text = rest.strip_prefix('_').ok_or_else(bad_section)?;
            let (section_text, next) = match section_text.find('_') {
                Some(at) => section_text.split_at(at),
                None => (section_text, ""),
            };
            rest = next;
            let encoding = section_text
                .bytes()
                .next()
                .and_then(TransferEncoding::from_letter)
                .ok_or_else(bad_section)?;
            let (start_text, length_text) =
                section_text[1..].split_once('x').ok_or_else(bad_section)?;
            let start = compact_decode('s', &format!("s{start_text}"))
                .and_then(|start| u32::try_from(start).ok())
                .ok_or_else(bad_section)?;
            let length = compact_decode('s', &format!("s{length_text}"))
                .and_then(|length| u32::try_from(length).ok())
                .ok_or_else(bad_section)?;
            let end = start.checked_add(length).ok_or_else(bad_section)?;
            let slot = id
                .sections
                .get_mut(usize::from(id.depth))
                .ok_or(type_error("BlobId", "too many part sections"))?;
            *slot = BlobSection {
                start,
                end,
                encoding,
            };
            id.depth += 1;
        }
        // One string per id: an identity section followed by another is never produced
        // (with_section merges them), so it is not accepted either.
        if id
            .sections()
            .iter()
            .rev()
            .skip(1)
            .any(|section| section.encoding == TransferEncoding::Identity)
        {
            return Err(bad_section());
        }
        Ok(id)
    }
}

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        _ => None,
    }
}

impl fmt::Display for BlobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut text = [0u8; 65];
        text[0] = b'G';
        for (index, byte) in self.digest.iter().enumerate() {
            text[1 + 2 * index] = HEX[usize::from(byte >> 4)];
            text[2 + 2 * index] = HEX[usize::from(byte & 15)];
        }
        // Only ASCII was written above.
        f.write_str(std::str::from_utf8(&text).map_err(|_| fmt::Error)?)?;
        for section in self.sections() {
            let mut part = String::with_capacity(32);
            part.push('_');
            part.push(section.encoding.letter());
            compact_encode('s', u64::from(section.start), &mut part);
            part.remove(2);
            let mut length = String::with_capacity(14);
            compact_encode('x', u64::from(section.end - section.start), &mut length);
            part.push_str(&length);
            f.write_str(&part)?;
        }
        Ok(())
    }
}

impl fmt::Debug for BlobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlobId({self})")
    }
}

impl Serialize for BlobId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}
