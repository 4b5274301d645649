//! [`BlobHash`]: a blob's identity, parsed at the boundary (hex in blob ids and keys).

use sha2::{Digest, Sha256};

/// A blob's identity: the SHA-256 digest of its content.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlobHash(pub [u8; 32]);

impl BlobHash {
    pub fn of(content: &[u8]) -> BlobHash {
        BlobHash(Sha256::digest(content).into())
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lower-case hex, 64 characters.
    pub fn to_hex(&self) -> String {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut text = String::with_capacity(64);
        for byte in self.0 {
            text.push(char::from(DIGITS[usize::from(byte >> 4)]));
            text.push(char::from(DIGITS[usize::from(byte & 0x0F)]));
        }
        text
    }

    /// Parses 64 hex digits (either case); `None` for anything else.
    pub fn from_hex(text: &str) -> Option<BlobHash> {
        let bytes = text.as_bytes();
        if bytes.len() != 64 {
            return None;
        }
        let nibble = |digit: u8| {
            char::from(digit)
                .to_digit(16)
                .and_then(|value| u8::try_from(value).ok())
        };
        let mut digest = [0u8; 32];
        for (index, pair) in bytes.chunks_exact(2).enumerate() {
            digest[index] = (nibble(pair[0])? << 4) | nibble(pair[1])?;
        }
        Some(BlobHash(digest))
    }
}

impl std::fmt::Display for BlobHash {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(&self.to_hex())
    }
}

impl std::fmt::Debug for BlobHash {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "BlobHash({})", self.to_hex())
    }
}
