//! The JMAP request engine (RFC 8620): request parsing and validation, result references,
//! the one dispatch table, method errors as values, and the generic /get, /set, /changes,
//! /query and /queryChanges machinery that object types plug into.
