//! blob
