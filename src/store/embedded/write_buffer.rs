//! The buffered writes of one transaction, and the conflict ranges it collects.
//!
//! Reads must see the transaction's own writes (FoundationDB's read-your-writes): a `get` or a
//! range read first looks here and falls back to the snapshot only for keys this transaction
//! has not touched. Invariants:
//! - `cleared_ranges` are disjoint, non-adjacent, sorted, and never empty;
//! - a point write recorded after a `clear_range` overrides it; a `clear_range` removes the
//!   point writes it covers, so an `Add` entry never lies inside a cleared range (its base is
//!   therefore always the snapshot value).

use std::collections::BTreeMap;
use std::ops::Bound;

use crate::store::{
    KeyRange, MAX_KEY_BYTES, MAX_TRANSACTION_BYTES, MAX_VALUE_BYTES, StoreError, StoreErrorKind,
    StoreResult,
};

/// What a transaction will do to one key at commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PendingWrite {
    Set(Vec<u8>),
    Clear,
    /// FoundationDB's ADD on a little-endian i64, applied to the committed value.
    Add(i64),
}

/// One change applied by the committer, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Mutation {
    Set { key: Vec<u8>, value: Vec<u8> },
    Clear { key: Vec<u8> },
    ClearRange { begin: Vec<u8>, end: Vec<u8> },
    Add { key: Vec<u8>, delta: i64 },
}

/// What the buffer knows about one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BufferedLookup {
    /// Not touched by this transaction: read the snapshot.
    Untouched,
    /// Set or cleared by this transaction: this is the answer.
    Known(Option<Vec<u8>>),
    /// An atomic add waiting on the snapshot value.
    AddTo(i64),
}

#[derive(Debug, Default)]
pub(crate) struct WriteBuffer {
    writes: BTreeMap<Vec<u8>, PendingWrite>,
    /// begin → end of every range cleared by this transaction.
    cleared_ranges: BTreeMap<Vec<u8>, Vec<u8>>,
    /// Bytes counted against [`MAX_TRANSACTION_BYTES`], as FoundationDB counts them: every
    /// mutation's key and value, even when a later write to the same key supersedes it.
    mutation_bytes: usize,
}

/// The key right after `key`: `[key, key_after(key))` holds exactly `key`.
pub(crate) fn key_after(key: &[u8]) -> Vec<u8> {
    let mut next = Vec::with_capacity(key.len() + 1);
    next.extend_from_slice(key);
    next.push(0x00);
    next
}

/// The little-endian i64 result of FoundationDB's ADD on `base` (missing bytes are zero).
pub(crate) fn add_to_value(base: Option<&[u8]>, delta: i64) -> Vec<u8> {
    let base_value = base.map(crate::store::keys::le_i64).unwrap_or(0);
    base_value.wrapping_add(delta).to_le_bytes().to_vec()
}

fn limit_error(message: String) -> StoreError {
    StoreError::new(StoreErrorKind::LimitExceeded, message)
}

/// FoundationDB's key rules: at most [`MAX_KEY_BYTES`], and nothing in the `0xFF` system space.
pub(crate) fn check_writable_key(key: &[u8]) -> StoreResult<()> {
    if key.len() > MAX_KEY_BYTES {
        return Err(limit_error(format!(
            "key of {} bytes exceeds the {MAX_KEY_BYTES}-byte limit",
            key.len()
        )));
    }
    if key.first() == Some(&0xFF) {
        return Err(limit_error("keys starting with 0xFF are reserved".into()));
    }
    Ok(())
}

/// FoundationDB's value rule: at most [`MAX_VALUE_BYTES`].
pub(crate) fn check_value(value: &[u8]) -> StoreResult<()> {
    if value.len() > MAX_VALUE_BYTES {
        return Err(limit_error(format!(
            "value of {} bytes exceeds the {MAX_VALUE_BYTES}-byte limit",
            value.len()
        )));
    }
    Ok(())
}

impl WriteBuffer {
    pub(crate) fn is_empty(&self) -> bool {
        self.writes.is_empty() && self.cleared_ranges.is_empty()
    }

    pub(crate) fn mutation_bytes(&self) -> usize {
        self.mutation_bytes
    }

    fn charge(&mut self, bytes: usize) -> StoreResult<()> {
        self.mutation_bytes = self.mutation_bytes.saturating_add(bytes);
        if self.mutation_bytes > MAX_TRANSACTION_BYTES {
            return Err(limit_error(format!(
                "transaction writes {} bytes, over the {MAX_TRANSACTION_BYTES}-byte limit",
                self.mutation_bytes
            )));
        }
        Ok(())
    }

    pub(crate) fn set(&mut self, key: &[u8], value: &[u8]) -> StoreResult<()> {
        check_writable_key(key)?;
        check_value(value)?;
        self.charge(key.len() + value.len())?;
        self.writes
            .insert(key.to_vec(), PendingWrite::Set(value.to_vec()));
        Ok(())
    }

    pub(crate) fn clear(&mut self, key: &[u8]) -> StoreResult<()> {
        check_writable_key(key)?;
        self.charge(key.len())?;
        self.writes.insert(key.to_vec(), PendingWrite::Clear);
        Ok(())
    }

    pub(crate) fn atomic_add(&mut self, key: &[u8], delta: i64) -> StoreResult<()> {
        check_writable_key(key)?;
        self.charge(key.len() + 8)?;
        let combined = match self.writes.get(key) {
            Some(PendingWrite::Set(value)) => PendingWrite::Set(add_to_value(Some(value), delta)),
            Some(PendingWrite::Clear) => PendingWrite::Set(add_to_value(None, delta)),
            Some(PendingWrite::Add(earlier)) => PendingWrite::Add(earlier.wrapping_add(delta)),
            None if self.is_cleared(key) => PendingWrite::Set(add_to_value(None, delta)),
            None => PendingWrite::Add(delta),
        };
        self.writes.insert(key.to_vec(), combined);
        Ok(())
    }

    pub(crate) fn clear_range(&mut self, range: &KeyRange) -> StoreResult<()> {
        if range.begin >= range.end {
            return Ok(());
        }
        if range.begin.len() > MAX_KEY_BYTES + 1 || range.end.len() > MAX_KEY_BYTES + 1 {
            return Err(limit_error(
                "clear_range bound exceeds the key size limit".into(),
            ));
        }
        self.charge(range.begin.len() + range.end.len())?;
        let covered: Vec<Vec<u8>> = self
            .writes
            .range::<[u8], _>((
                Bound::Included(range.begin.as_slice()),
                Bound::Excluded(range.end.as_slice()),
            ))
            .map(|(key, _)| key.clone())
            .collect();
        for key in covered {
            self.writes.remove(&key);
        }
        self.insert_cleared_range(range.begin.clone(), range.end.clone());
        Ok(())
    }

    /// Merges `[begin, end)` into the disjoint set of cleared ranges.
    fn insert_cleared_range(&mut self, mut begin: Vec<u8>, mut end: Vec<u8>) {
        // A range that starts before `begin` and reaches it merges with us.
        if let Some((earlier_begin, earlier_end)) = self
            .cleared_ranges
            .range::<[u8], _>((Bound::Unbounded, Bound::Included(begin.as_slice())))
            .next_back()
            && *earlier_end >= begin
        {
            begin = earlier_begin.clone();
            if *earlier_end > end {
                end = earlier_end.clone();
            }
        }
        let swallowed: Vec<Vec<u8>> = self
            .cleared_ranges
            .range::<[u8], _>((
                Bound::Included(begin.as_slice()),
                Bound::Included(end.as_slice()),
            ))
            .map(|(start, _)| start.clone())
            .collect();
        for start in swallowed {
            if let Some(swallowed_end) = self.cleared_ranges.remove(&start)
                && swallowed_end > end
            {
                end = swallowed_end;
            }
        }
        debug_assert!(begin < end);
        self.cleared_ranges.insert(begin, end);
    }

    pub(crate) fn is_cleared(&self, key: &[u8]) -> bool {
        self.cleared_ranges
            .range::<[u8], _>((Bound::Unbounded, Bound::Included(key)))
            .next_back()
            .is_some_and(|(_, end)| key < end.as_slice())
    }

    pub(crate) fn lookup(&self, key: &[u8]) -> BufferedLookup {
        match self.writes.get(key) {
            Some(PendingWrite::Set(value)) => BufferedLookup::Known(Some(value.clone())),
            Some(PendingWrite::Clear) => BufferedLookup::Known(None),
            Some(PendingWrite::Add(delta)) => BufferedLookup::AddTo(*delta),
            None if self.is_cleared(key) => BufferedLookup::Known(None),
            None => BufferedLookup::Untouched,
        }
    }

    /// The buffered point writes inside `range`, in key order.
    pub(crate) fn writes_in<'a>(
        &'a self,
        range: &'a KeyRange,
    ) -> impl DoubleEndedIterator<Item = (&'a Vec<u8>, &'a PendingWrite)> + 'a {
        self.writes.range::<[u8], _>((
            Bound::Included(range.begin.as_slice()),
            Bound::Excluded(range.end.as_slice()),
        ))
    }

    /// The ranges a commit of this transaction writes, for other transactions' conflict checks.
    pub(crate) fn write_conflict_ranges(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut ranges: Vec<(Vec<u8>, Vec<u8>)> = self
            .cleared_ranges
            .iter()
            .map(|(begin, end)| (begin.clone(), end.clone()))
            .collect();
        ranges.extend(self.writes.keys().map(|key| (key.clone(), key_after(key))));
        ranges
    }

    /// The mutations to apply at commit: range clears first, then point writes (a point write
    /// recorded before a range clear was removed by it, so this order preserves the outcome).
    pub(crate) fn into_mutations(self) -> Vec<Mutation> {
        let mut mutations = Vec::with_capacity(self.cleared_ranges.len() + self.writes.len());
        for (begin, end) in self.cleared_ranges {
            mutations.push(Mutation::ClearRange { begin, end });
        }
        for (key, write) in self.writes {
            mutations.push(match write {
                PendingWrite::Set(value) => Mutation::Set { key, value },
                PendingWrite::Clear => Mutation::Clear { key },
                PendingWrite::Add(delta) => Mutation::Add { key, delta },
            });
        }
        mutations
    }
}

/// Sorts `ranges` and merges overlapping or adjacent ones, so that overlap with another range
/// can be tested by binary search.
pub(crate) fn coalesce_ranges(mut ranges: Vec<(Vec<u8>, Vec<u8>)>) -> Vec<(Vec<u8>, Vec<u8>)> {
    ranges.retain(|(begin, end)| begin < end);
    ranges.sort();
    let mut merged: Vec<(Vec<u8>, Vec<u8>)> = Vec::with_capacity(ranges.len());
    for (begin, end) in ranges {
        if let Some(last) = merged.last_mut()
            && begin <= last.1
        {
            if end > last.1 {
                last.1 = end;
            }
            continue;
        }
        merged.push((begin, end));
    }
    merged
}

/// Whether `[begin, end)` overlaps any range of `coalesced` (sorted, disjoint).
pub(crate) fn overlaps_any(coalesced: &[(Vec<u8>, Vec<u8>)], begin: &[u8], end: &[u8]) -> bool {
    let starts_before_end =
        coalesced.partition_point(|(other_begin, _)| other_begin.as_slice() < end);
    starts_before_end > 0 && coalesced[starts_before_end - 1].1.as_slice() > begin
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(begin: &[u8], end: &[u8]) -> KeyRange {
        KeyRange {
            begin: begin.to_vec(),
            end: end.to_vec(),
        }
    }

    #[test]
    fn cleared_ranges_merge_and_point_writes_override() {
        let mut buffer = WriteBuffer::default();
        buffer.set(b"b", b"1").unwrap();
        buffer.clear_range(&range(b"a", b"c")).unwrap();
        buffer.clear_range(&range(b"c", b"e")).unwrap();
        buffer.clear_range(&range(b"x", b"z")).unwrap();
        buffer.clear_range(&range(b"d", b"y")).unwrap();
        assert_eq!(buffer.cleared_ranges.len(), 1);
        assert_eq!(buffer.lookup(b"b"), BufferedLookup::Known(None));
        buffer.set(b"b", b"2").unwrap();
        assert_eq!(
            buffer.lookup(b"b"),
            BufferedLookup::Known(Some(b"2".to_vec()))
        );
        assert_eq!(buffer.lookup(b"z"), BufferedLookup::Untouched);
        buffer.atomic_add(b"q", 5).unwrap();
        assert_eq!(
            buffer.lookup(b"q"),
            BufferedLookup::Known(Some(5i64.to_le_bytes().to_vec()))
        );
        buffer.atomic_add(b"zz", 2).unwrap();
        buffer.atomic_add(b"zz", 3).unwrap();
        assert_eq!(buffer.lookup(b"zz"), BufferedLookup::AddTo(5));
    }

    #[test]
    fn overlap_checks_use_half_open_ranges() {
        let ranges = coalesce_ranges(vec![
            (b"c".to_vec(), b"d".to_vec()),
            (b"a".to_vec(), b"b".to_vec()),
            (b"b".to_vec(), b"b\0".to_vec()),
        ]);
        assert_eq!(ranges.len(), 2);
        assert!(overlaps_any(&ranges, b"b", b"b\0"));
        assert!(!overlaps_any(&ranges, b"b\0", b"c"));
        assert!(overlaps_any(&ranges, b"b\0", b"c\0"));
        assert!(!overlaps_any(&ranges, b"d", b"z"));
        assert!(!overlaps_any(&[], b"a", b"z"));
    }
}
