//! The stored EmailSubmission (RFC 8621 §7) in a compact binary form (documented in
//! `schema/submission.md`): small, read whole by /get and /query, rewritten whole by every
//! delivery report.

use crate::store::StoreError;
use crate::store::blob::BlobHash;
use crate::store::record_codec::{RecordReader, put_len, put_text};

/// Format version byte at the start of every record; bump when the layout changes.
const RECORD_FORMAT: u8 = 1;

/// RFC 8621 §7 undoStatus. Only moves forward: pending → final or pending → canceled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum UndoStatus {
    /// It may still be possible to cancel the submission.
    Pending = 0,
    /// The message was handed over for delivery in a way that cannot be recalled.
    Final = 1,
    /// The client canceled it before it left.
    Canceled = 2,
}

impl UndoStatus {
    pub fn name(self) -> &'static str {
        match self {
            UndoStatus::Pending => "pending",
            UndoStatus::Final => "final",
            UndoStatus::Canceled => "canceled",
        }
    }

    pub fn from_name(name: &str) -> Option<UndoStatus> {
        [UndoStatus::Pending, UndoStatus::Final, UndoStatus::Canceled]
            .into_iter()
            .find(|status| status.name() == name)
    }

    fn from_u8(code: u8) -> Option<UndoStatus> {
        [UndoStatus::Pending, UndoStatus::Final, UndoStatus::Canceled]
            .into_iter()
            .find(|status| *status as u8 == code)
    }
}

/// RFC 8621 §7 DeliveryStatus `delivered`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Delivered {
    /// Still in the queue (or being retried after a temporary failure).
    Queued = 0,
    /// Accepted by the next hop (or delivered to a local mailbox).
    Yes = 1,
    /// Failed permanently; a DSN was or will be generated.
    No = 2,
    /// Relayed where no further status is known.
    Unknown = 3,
}

impl Delivered {
    pub fn name(self) -> &'static str {
        match self {
            Delivered::Queued => "queued",
            Delivered::Yes => "yes",
            Delivered::No => "no",
            Delivered::Unknown => "unknown",
        }
    }

    fn from_u8(code: u8) -> Option<Delivered> {
        [
            Delivered::Queued,
            Delivered::Yes,
            Delivered::No,
            Delivered::Unknown,
        ]
        .into_iter()
        .find(|status| *status as u8 == code)
    }
}

/// One SMTP address of the envelope with its parameters (RFC 8621 §7 `Address`): parameter
/// name → value (`None` for a parameter without value, RFC 5321 §4.1.2 esmtp-param).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EnvelopeAddress {
    pub email: String,
    /// `None` is JSON null (no parameters); names are kept as the client gave them.
    pub parameters: Option<Vec<(String, Option<String>)>>,
}

impl EnvelopeAddress {
    pub fn plain(email: impl Into<String>) -> EnvelopeAddress {
        EnvelopeAddress {
            email: email.into(),
            parameters: None,
        }
    }

    /// The value of a parameter, matched case-insensitively (RFC 5321 §2.4: keywords are
    /// case-insensitive). `Some(None)` for a parameter given without a value.
    pub fn parameter(&self, name: &str) -> Option<Option<&str>> {
        self.parameters
            .as_ref()?
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_deref())
    }
}

/// RFC 8621 §7 Envelope.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Envelope {
    pub mail_from: EnvelopeAddress,
    pub rcpt_to: Vec<EnvelopeAddress>,
}

/// RFC 8621 §7 DeliveryStatus of one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipientStatus {
    /// The rcptTo address this status is for (the key of the deliveryStatus map).
    pub address: String,
    /// The last SMTP reply for this recipient (RFC 8621 §7: e.g. "250 2.1.5 OK").
    pub smtp_reply: String,
    pub delivered: Delivered,
    /// Whether an MDN said the message was displayed (RFC 8621 §7 displayed "yes").
    pub displayed: bool,
}

impl RecipientStatus {
    /// The status of a recipient whose message was just queued.
    pub fn queued(address: impl Into<String>) -> RecipientStatus {
        RecipientStatus {
            address: address.into(),
            smtp_reply: "250 2.0.0 queued".to_owned(),
            delivered: Delivered::Queued,
            displayed: false,
        }
    }
}

/// One EmailSubmission (`ACCT_OBJECT, EmailSubmission, id`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubmissionRecord {
    pub identity_id: u64,
    pub email_id: u64,
    pub thread_id: u64,
    /// The envelope given or derived at creation (RFC 8621 §7.5); immutable.
    pub envelope: Envelope,
    /// Unix seconds: when the message is (or was) released for delivery (RFC 8621 §7).
    pub send_at: i64,
    pub undo_status: UndoStatus,
    /// One per rcptTo address, in envelope order.
    pub delivery_status: Vec<RecipientStatus>,
    /// DSN messages received for this submission (RFC 8621 §7 dsnBlobIds).
    pub dsn_blobs: Vec<BlobHash>,
    /// MDN messages received for this submission (RFC 8621 §7 mdnBlobIds).
    pub mdn_blobs: Vec<BlobHash>,
    /// The outbound queue entry carrying the message, for cancellation; `None` once nothing
    /// is queued any more (canceled) or when nothing needed sending.
    pub outbound_id: Option<u64>,
}

impl SubmissionRecord {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(128 + 64 * self.envelope.rcpt_to.len());
        out.push(RECORD_FORMAT);
        out.extend_from_slice(&self.identity_id.to_be_bytes());
        out.extend_from_slice(&self.email_id.to_be_bytes());
        out.extend_from_slice(&self.thread_id.to_be_bytes());
        out.extend_from_slice(&self.send_at.to_be_bytes());
        out.push(self.undo_status as u8);
        match self.outbound_id {
            Some(id) => {
                out.push(1);
                out.extend_from_slice(&id.to_be_bytes());
            }
            None => out.push(0),
        }
        put_address(&mut out, &self.envelope.mail_from);
        put_len(&mut out, self.envelope.rcpt_to.len());
        for address in &self.envelope.rcpt_to {
            put_address(&mut out, address);
        }
        put_len(&mut out, self.delivery_status.len());
        for status in &self.delivery_status {
            put_text(&mut out, &status.address);
            put_text(&mut out, &status.smtp_reply);
            out.push(status.delivered as u8);
            out.push(u8::from(status.displayed));
        }
        for blobs in [&self.dsn_blobs, &self.mdn_blobs] {
            put_len(&mut out, blobs.len());
            for blob in blobs {
                out.extend_from_slice(blob.as_bytes());
            }
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<SubmissionRecord, StoreError> {
        let mut reader = RecordReader::new(bytes, "EmailSubmission record");
        if reader.u8()? != RECORD_FORMAT {
            return Err(StoreError::corrupt("unknown EmailSubmission record format"));
        }
        let identity_id = reader.u64()?;
        let email_id = reader.u64()?;
        let thread_id = reader.u64()?;
        let send_at = reader.u64()? as i64;
        let undo_status = UndoStatus::from_u8(reader.u8()?)
            .ok_or_else(|| StoreError::corrupt("unknown EmailSubmission undoStatus"))?;
        let outbound_id = match reader.u8()? {
            0 => None,
            _ => Some(reader.u64()?),
        };
        let mail_from = read_address(&mut reader)?;
        let rcpt_count = reader.length_prefix()?;
        let mut rcpt_to = Vec::with_capacity(rcpt_count);
        for _ in 0..rcpt_count {
            rcpt_to.push(read_address(&mut reader)?);
        }
        let status_count = reader.length_prefix()?;
        let mut delivery_status = Vec::with_capacity(status_count);
        for _ in 0..status_count {
            let address = reader.text()?;
            let smtp_reply = reader.text()?;
            let delivered = Delivered::from_u8(reader.u8()?)
                .ok_or_else(|| StoreError::corrupt("unknown EmailSubmission delivered"))?;
            let displayed = reader.u8()? != 0;
            delivery_status.push(RecipientStatus {
                address,
                smtp_reply,
                delivered,
                displayed,
            });
        }
        let mut blob_lists = [Vec::new(), Vec::new()];
        for list in &mut blob_lists {
            let count = reader.length_prefix()?;
            for _ in 0..count {
                list.push(BlobHash(reader.array()?));
            }
        }
        let [dsn_blobs, mdn_blobs] = blob_lists;
        Ok(SubmissionRecord {
            identity_id,
            email_id,
            thread_id,
            envelope: Envelope { mail_from, rcpt_to },
            send_at,
            undo_status,
            delivery_status,
            dsn_blobs,
            mdn_blobs,
            outbound_id,
        })
    }
}

fn put_address(out: &mut Vec<u8>, address: &EnvelopeAddress) {
    put_text(out, &address.email);
    match &address.parameters {
        None => out.push(0),
        Some(parameters) => {
            out.push(1);
            put_len(out, parameters.len());
            for (name, value) in parameters {
                put_text(out, name);
                match value {
                    Some(value) => {
                        out.push(1);
                        put_text(out, value);
                    }
                    None => out.push(0),
                }
            }
        }
    }
}

fn read_address(reader: &mut RecordReader<'_>) -> Result<EnvelopeAddress, StoreError> {
    let email = reader.text()?;
    let parameters = match reader.u8()? {
        0 => None,
        _ => {
            let count = reader.length_prefix()?;
            let mut parameters = Vec::with_capacity(count);
            for _ in 0..count {
                let name = reader.text()?;
                let value = match reader.u8()? {
                    0 => None,
                    _ => Some(reader.text()?),
                };
                parameters.push((name, value));
            }
            Some(parameters)
        }
    };
    Ok(EnvelopeAddress { email, parameters })
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample() -> SubmissionRecord {
        SubmissionRecord {
            identity_id: 1,
            email_id: 42,
            thread_id: 7,
            envelope: Envelope {
                mail_from: EnvelopeAddress {
                    email: "alice@example.test".into(),
                    parameters: Some(vec![
                        ("HOLDFOR".into(), Some("60".into())),
                        ("SMTPUTF8".into(), None),
                    ]),
                },
                rcpt_to: vec![
                    EnvelopeAddress::plain("bob@example.org"),
                    EnvelopeAddress::plain("carol@example.net"),
                ],
            },
            send_at: 1_700_000_060,
            undo_status: UndoStatus::Pending,
            delivery_status: vec![
                RecipientStatus::queued("bob@example.org"),
                RecipientStatus::queued("carol@example.net"),
            ],
            dsn_blobs: vec![BlobHash::of(b"dsn")],
            mdn_blobs: Vec::new(),
            outbound_id: Some(9),
        }
    }

    #[test]
    fn submission_record_round_trips() {
        let record = sample();
        assert_eq!(SubmissionRecord::decode(&record.encode()).unwrap(), record);
        let mut canceled = record.clone();
        canceled.undo_status = UndoStatus::Canceled;
        canceled.outbound_id = None;
        canceled.envelope.mail_from.parameters = None;
        assert_eq!(
            SubmissionRecord::decode(&canceled.encode()).unwrap(),
            canceled
        );
        assert!(SubmissionRecord::decode(&record.encode()[..30]).is_err());
        assert_eq!(
            record.envelope.mail_from.parameter("holdfor"),
            Some(Some("60"))
        );
        assert_eq!(record.envelope.mail_from.parameter("smtputf8"), Some(None));
        assert_eq!(record.envelope.mail_from.parameter("ret"), None);
    }
}
