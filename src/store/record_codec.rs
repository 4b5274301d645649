//! The compact binary encoding shared by stored records (Email, EmailSubmission): big-endian
//! integers and text as a u16 length followed by UTF-8. One reader for every record type, so a
//! truncated or corrupt value is reported the same way everywhere and names the record.

use super::StoreError;

/// A u16 length; longer values are the writer's bug, so they are clamped rather than wrapped.
pub fn put_len(out: &mut Vec<u8>, len: usize) {
    debug_assert!(
        len <= usize::from(u16::MAX),
        "record field longer than 65,535"
    );
    out.extend_from_slice(&u16::try_from(len).unwrap_or(u16::MAX).to_be_bytes());
}

/// Length-prefixed UTF-8, cut (on a character boundary) to 65,535 bytes.
pub fn put_text(out: &mut Vec<u8>, text: &str) {
    let mut end = text.len().min(usize::from(u16::MAX));
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    out.extend_from_slice(&u16::try_from(end).unwrap_or(u16::MAX).to_be_bytes());
    out.extend_from_slice(&text.as_bytes()[..end]);
}

/// Reads a record written with [`put_len`] / [`put_text`] and big-endian integers.
pub struct RecordReader<'a> {
    bytes: &'a [u8],
    at: usize,
    /// The record's name in error messages ("Email record").
    record: &'static str,
}

impl<'a> RecordReader<'a> {
    pub fn new(bytes: &'a [u8], record: &'static str) -> RecordReader<'a> {
        RecordReader {
            bytes,
            at: 0,
            record,
        }
    }

    pub fn take(&mut self, count: usize) -> Result<&'a [u8], StoreError> {
        let end = self.at.saturating_add(count);
        let bytes: &'a [u8] = self.bytes;
        let slice = bytes
            .get(self.at..end)
            .ok_or_else(|| StoreError::corrupt(format!("truncated {}", self.record)))?;
        self.at = end;
        Ok(slice)
    }

    pub fn u8(&mut self) -> Result<u8, StoreError> {
        Ok(self.take(1)?[0])
    }

    pub fn u64(&mut self) -> Result<u64, StoreError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], StoreError> {
        let record = self.record;
        self.take(N)?
            .try_into()
            .map_err(|_| StoreError::corrupt(format!("truncated {record}")))
    }

    pub fn length_prefix(&mut self) -> Result<usize, StoreError> {
        Ok(usize::from(u16::from_be_bytes(self.array()?)))
    }

    pub fn text(&mut self) -> Result<String, StoreError> {
        let len = self.length_prefix()?;
        let record = self.record;
        String::from_utf8(self.take(len)?.to_vec())
            .map_err(|_| StoreError::corrupt(format!("{record} text is not UTF-8")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_round_trips_and_truncation_is_an_error() {
        let mut out = Vec::new();
        put_text(&mut out, "héllo");
        out.extend_from_slice(&7u64.to_be_bytes());
        let mut reader = RecordReader::new(&out, "test record");
        assert_eq!(reader.text().expect("text"), "héllo");
        assert_eq!(reader.u64().expect("u64"), 7);
        assert!(reader.u8().is_err());
        let mut cut = RecordReader::new(&out[..3], "test record");
        let error = cut.text().expect_err("truncated");
        assert!(
            error.to_string().contains("truncated test record"),
            "{error}"
        );
    }

    #[test]
    fn text_longer_than_a_u16_is_cut_on_a_character_boundary() {
        let long = "é".repeat(40_000);
        let mut out = Vec::new();
        put_text(&mut out, &long);
        let text = RecordReader::new(&out, "test record").text().expect("text");
        assert!(text.len() <= usize::from(u16::MAX));
        assert!(long.starts_with(&text));
    }
}
