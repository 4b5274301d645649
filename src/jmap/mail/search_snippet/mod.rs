//! SearchSnippet (RFC 8621 §5): the parts of an Email that matched a text filter, marked.

pub mod get;
