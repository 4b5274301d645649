//! The small, mutable record of one Email and the Thread record, in a compact binary form
//! (documented in `schema/mail.md`). The record holds everything /query filters and sorts on
//! without text search, so a query never opens the parsed metadata or the message.

use crate::store::StoreError;
use crate::store::blob::BlobHash;
use crate::store::record_codec::{RecordReader, put_len, put_text};

/// Format version byte at the start of every record; bump when the layout changes.
const RECORD_FORMAT: u8 = 1;

/// One Email's mutable state and its sort/filter keys (`ACCT_OBJECT, Email, id`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailRecord {
    /// The raw RFC 5322 message, stored once as a blob.
    pub blob: BlobHash,
    pub thread_id: u64,
    /// Unix seconds (RFC 8621 §4.1.1 receivedAt).
    pub received_at: i64,
    pub size: u64,
    /// Sorted, unique, never empty for a stored Email (RFC 8621 §4.1.1).
    pub mailbox_ids: Vec<u64>,
    /// Sorted, unique, lower-case (keywords are case-insensitive, RFC 8621 §4.1.1).
    pub keywords: Vec<String>,
    /// Unix seconds of the Date header, if it parsed.
    pub sent_at: Option<i64>,
    pub has_attachment: bool,
    /// Lower-cased base subject (RFC 5256 §2.1), the subject sort key and the thread key.
    pub base_subject: String,
    /// Lower-cased name (else address) of the first From address (RFC 8621 §4.4.2 sort "from").
    pub from_sort: String,
    /// The same for the first To address.
    pub to_sort: String,
}

impl EmailRecord {
    pub fn has_keyword(&self, keyword: &str) -> bool {
        self.keywords
            .binary_search_by(|probe| probe.as_str().cmp(keyword))
            .is_ok()
    }

    /// Neither `$seen` nor `$draft` (RFC 8621 §2 unreadEmails).
    pub fn is_unread(&self) -> bool {
        !self.has_keyword("$seen") && !self.has_keyword("$draft")
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(96 + self.keywords.len() * 8);
        out.push(RECORD_FORMAT);
        out.extend_from_slice(self.blob.as_bytes());
        out.extend_from_slice(&self.thread_id.to_be_bytes());
        out.extend_from_slice(&self.received_at.to_be_bytes());
        out.extend_from_slice(&self.size.to_be_bytes());
        put_len(&mut out, self.mailbox_ids.len());
        for mailbox_id in &self.mailbox_ids {
            out.extend_from_slice(&mailbox_id.to_be_bytes());
        }
        put_len(&mut out, self.keywords.len());
        for keyword in &self.keywords {
            put_text(&mut out, keyword);
        }
        match self.sent_at {
            Some(seconds) => {
                out.push(1);
                out.extend_from_slice(&seconds.to_be_bytes());
            }
            None => out.push(0),
        }
        out.push(u8::from(self.has_attachment));
        put_text(&mut out, &self.base_subject);
        put_text(&mut out, &self.from_sort);
        put_text(&mut out, &self.to_sort);
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<EmailRecord, StoreError> {
        let mut reader = RecordReader::new(bytes, "Email record");
        if reader.u8()? != RECORD_FORMAT {
            return Err(StoreError::corrupt("unknown Email record format"));
        }
        let blob = BlobHash(reader.array()?);
        let thread_id = reader.u64()?;
        let received_at = reader.u64()? as i64;
        let size = reader.u64()?;
        let mailbox_count = reader.length_prefix()?;
        let mut mailbox_ids = Vec::with_capacity(mailbox_count);
        for _ in 0..mailbox_count {
            mailbox_ids.push(reader.u64()?);
        }
        let keyword_count = reader.length_prefix()?;
        let mut keywords = Vec::with_capacity(keyword_count);
        for _ in 0..keyword_count {
            keywords.push(reader.text()?);
        }
        let sent_at = match reader.u8()? {
            0 => None,
            _ => Some(reader.u64()? as i64),
        };
        let has_attachment = reader.u8()? != 0;
        Ok(EmailRecord {
            blob,
            thread_id,
            received_at,
            size,
            mailbox_ids,
            keywords,
            sent_at,
            has_attachment,
            base_subject: reader.text()?,
            from_sort: reader.text()?,
            to_sort: reader.text()?,
        })
    }
}

/// The members of one Thread, oldest first (RFC 8621 §3: emailIds sorted by receivedAt).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ThreadRecord {
    /// `(received_at, email_id)`, sorted.
    pub members: Vec<(i64, u64)>,
}

impl ThreadRecord {
    pub fn insert(&mut self, received_at: i64, email_id: u64) {
        let member = (received_at, email_id);
        if let Err(position) = self.members.binary_search(&member) {
            self.members.insert(position, member);
        }
    }

    pub fn remove(&mut self, email_id: u64) {
        self.members.retain(|(_, id)| *id != email_id);
    }

    pub fn email_ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.members.iter().map(|(_, id)| *id)
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 + self.members.len() * 16);
        out.push(RECORD_FORMAT);
        for (received_at, email_id) in &self.members {
            out.extend_from_slice(&received_at.to_be_bytes());
            out.extend_from_slice(&email_id.to_be_bytes());
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<ThreadRecord, StoreError> {
        let Some((&RECORD_FORMAT, body)) = bytes.split_first() else {
            return Err(StoreError::corrupt("unknown Thread record format"));
        };
        if body.len() % 16 != 0 {
            return Err(StoreError::corrupt("truncated Thread record"));
        }
        let members = body
            .chunks_exact(16)
            .map(|pair| {
                let (received, id) = pair.split_at(8);
                (
                    i64::from_be_bytes(received.try_into().unwrap_or_default()),
                    u64::from_be_bytes(id.try_into().unwrap_or_default()),
                )
            })
            .collect();
        Ok(ThreadRecord { members })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_record_round_trips() {
        let record = EmailRecord {
            blob: BlobHash::of(b"message"),
            thread_id: 7,
            received_at: -5,
            size: 1234,
            mailbox_ids: vec![1, 3],
            keywords: vec!["$seen".into(), "work".into()],
            sent_at: Some(1_700_000_000),
            has_attachment: true,
            base_subject: "héllo".into(),
            from_sort: "alice".into(),
            to_sort: String::new(),
        };
        assert_eq!(EmailRecord::decode(&record.encode()).unwrap(), record);
        assert!(!record.is_unread());
        assert!(EmailRecord::decode(&record.encode()[..20]).is_err());
    }

    #[test]
    fn thread_members_stay_sorted_by_received_at() {
        let mut thread = ThreadRecord::default();
        thread.insert(30, 1);
        thread.insert(10, 2);
        thread.insert(20, 3);
        thread.insert(20, 3);
        assert_eq!(thread.email_ids().collect::<Vec<_>>(), [2, 3, 1]);
        thread.remove(3);
        let decoded = ThreadRecord::decode(&thread.encode()).unwrap();
        assert_eq!(decoded.email_ids().collect::<Vec<_>>(), [2, 1]);
    }
}
