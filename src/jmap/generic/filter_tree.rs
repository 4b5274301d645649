//! The FilterOperator tree of RFC 8620 §5.5 over a type's own FilterCondition: parsed once
//! here, evaluated by each type's condition test (types whose query runs in memory over their
//! records: Mailbox, EmailSubmission, Quota).

use serde_json::{Map, Value};

use crate::jmap::error::{MethodError, MethodErrorType};

/// Parses one FilterCondition of a type.
pub type ConditionParser<'a, C> = &'a dyn Fn(&Map<String, Value>) -> Result<C, MethodError>;

/// A parsed `filter`: operators over conditions `C`.
#[derive(Debug, Clone, PartialEq)]
pub enum FilterTree<C> {
    And(Vec<FilterTree<C>>),
    Or(Vec<FilterTree<C>>),
    Not(Vec<FilterTree<C>>),
    Condition(C),
}

impl<C> FilterTree<C> {
    /// Parses `filter`, each FilterCondition with `condition`.
    pub fn parse(
        filter: &Value,
        condition: ConditionParser<'_, C>,
    ) -> Result<FilterTree<C>, MethodError> {
        let Value::Object(members) = filter else {
            return Err(MethodError::invalid_arguments("a filter must be an object"));
        };
        let Some(operator) = members.get("operator") else {
            return condition(members).map(FilterTree::Condition);
        };
        let conditions = match members.get("conditions") {
            Some(Value::Array(conditions)) => conditions
                .iter()
                .map(|member| FilterTree::parse(member, condition))
                .collect::<Result<Vec<_>, _>>()?,
            _ => {
                return Err(MethodError::invalid_arguments(
                    "a FilterOperator needs \"conditions\"",
                ));
            }
        };
        match operator.as_str() {
            Some("AND") => Ok(FilterTree::And(conditions)),
            Some("OR") => Ok(FilterTree::Or(conditions)),
            Some("NOT") => Ok(FilterTree::Not(conditions)),
            _ => Err(MethodError::with_description(
                MethodErrorType::UnsupportedFilter,
                "\"operator\" must be AND, OR or NOT",
            )),
        }
    }

    /// Whether the tree holds, `test` deciding each condition (RFC 8620 §5.5: NOT is "none
    /// of").
    pub fn matches(&self, test: &dyn Fn(&C) -> bool) -> bool {
        match self {
            FilterTree::And(all) => all.iter().all(|filter| filter.matches(test)),
            FilterTree::Or(any) => any.iter().any(|filter| filter.matches(test)),
            FilterTree::Not(none) => !none.iter().any(|filter| filter.matches(test)),
            FilterTree::Condition(condition) => test(condition),
        }
    }
}
