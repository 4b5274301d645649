//! One reader generation of the index, asked several questions about one text condition: how
//! many documents match, which match, which do not, and which of a few given Emails match. A
//! query that combines the answers (a total, a membership test) reads them all from the same
//! commit, so they agree with each other.

use std::collections::HashSet;

use tantivy::Searcher;
use tantivy::Term;
use tantivy::collector::Count;
use tantivy::query::{BooleanQuery, Occur, Query, TermQuery, TermSetQuery};
use tantivy::schema::IndexRecordOption;

use super::query::{self, EmailIds, TextMatch};
use super::schema::{self, Fields};
use super::{SearchError, SearchHandle};

pub struct IndexSnapshot {
    searcher: Searcher,
    fields: Fields,
}

impl SearchHandle {
    /// The index as of its last reload; every answer of the snapshot comes from that commit.
    pub fn snapshot(&self) -> IndexSnapshot {
        IndexSnapshot {
            searcher: self.shared.reader.searcher(),
            fields: self.shared.fields,
        }
    }
}

impl IndexSnapshot {
    fn account_query(&self, account_id: u32) -> Box<dyn Query> {
        Box::new(TermQuery::new(
            Term::from_field_u64(self.fields.account, u64::from(account_id)),
            IndexRecordOption::Basic,
        ))
    }

    fn count_query(&self, query: &dyn Query) -> Result<u64, SearchError> {
        self.searcher
            .search(query, &Count)
            .map(|count| count as u64)
            .map_err(SearchError::index)
    }

    fn ids(&self, query: &dyn Query) -> Result<HashSet<u64>, SearchError> {
        let ids = self
            .searcher
            .search(query, &EmailIds)
            .map_err(SearchError::index)?;
        Ok(ids.into_iter().collect())
    }

    /// Documents of the account.
    pub fn account_documents(&self, account_id: u32) -> Result<u64, SearchError> {
        self.count_query(self.account_query(account_id).as_ref())
    }

    /// Documents of the account matching `condition`, counted without collecting them.
    pub fn count(&self, account_id: u32, condition: &TextMatch) -> Result<u64, SearchError> {
        self.count_query(query::to_query(&self.fields, account_id, condition).as_ref())
    }

    /// The Emails whose document matches `condition`.
    pub fn matching(
        &self,
        account_id: u32,
        condition: &TextMatch,
    ) -> Result<HashSet<u64>, SearchError> {
        self.ids(query::to_query(&self.fields, account_id, condition).as_ref())
    }

    /// The Emails of the account whose document does not match `condition`.
    pub fn not_matching(
        &self,
        account_id: u32,
        condition: &TextMatch,
    ) -> Result<HashSet<u64>, SearchError> {
        let query = BooleanQuery::new(vec![
            (Occur::Must, self.account_query(account_id)),
            (
                Occur::MustNot,
                query::to_query(&self.fields, account_id, condition),
            ),
        ]);
        self.ids(&query)
    }

    /// Those of `email_ids` whose document matches `condition`.
    pub fn matching_among(
        &self,
        account_id: u32,
        condition: &TextMatch,
        email_ids: &HashSet<u64>,
    ) -> Result<HashSet<u64>, SearchError> {
        if email_ids.is_empty() {
            return Ok(HashSet::new());
        }
        let uids = email_ids.iter().map(|email_id| {
            Term::from_field_bytes(self.fields.uid, &schema::uid(account_id, *email_id))
        });
        let query = BooleanQuery::new(vec![
            (
                Occur::Must,
                Box::new(TermSetQuery::new(uids)) as Box<dyn Query>,
            ),
            (
                Occur::Must,
                query::to_query(&self.fields, account_id, condition),
            ),
        ]);
        self.ids(&query)
    }
}
