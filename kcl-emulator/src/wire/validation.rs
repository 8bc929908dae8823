//! The `ValidationException` both services answer when a member breaks its model constraint.
//!
//! AWS words every such error the same way ("1 validation error detected: Value ... at
//! 'member' failed to satisfy constraint: ..."), and clients and tests match on that wording,
//! so it is written in exactly one place: [`constraint_violation`].

use std::fmt::Display;

use crate::wire::ApiError;

/// How the offending value appears in the message.
#[derive(Clone, Copy)]
pub(crate) enum Shown<'a> {
    /// Quoted: `Value 'x' at ...`.
    Value(&'a dyn Display),
    /// The member was absent: `Value null at ...`.
    Null,
    /// Left out, as AWS does for lists, maps and blobs: `Value at ...`.
    Omitted,
}

impl std::fmt::Debug for Shown<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Shown::Value(value) => write!(f, "Value({value})"),
            Shown::Null => f.write_str("Null"),
            Shown::Omitted => f.write_str("Omitted"),
        }
    }
}

/// The error for `member` failing `constraint`, with the value shown as `shown`.
pub(crate) fn constraint_violation(shown: Shown<'_>, member: &str, constraint: &str) -> ApiError {
    let value = match shown {
        Shown::Value(value) => format!("Value '{value}' "),
        Shown::Null => "Value null ".to_owned(),
        Shown::Omitted => "Value ".to_owned(),
    };
    ApiError::validation(format!(
        "1 validation error detected: {value}at '{member}' failed to satisfy constraint: \
         {constraint}"
    ))
}

/// `value` at `member` fails `constraint`.
pub(crate) fn invalid(value: impl Display, member: &str, constraint: &str) -> ApiError {
    constraint_violation(Shown::Value(&value), member, constraint)
}

/// A required `member` is missing.
pub(crate) fn null(member: &str) -> ApiError {
    constraint_violation(Shown::Null, member, "Member must not be null")
}

/// `member` (a list, map or blob, whose value AWS does not print) fails `constraint`.
pub(crate) fn invalid_unshown(member: &str, constraint: &str) -> ApiError {
    constraint_violation(Shown::Omitted, member, constraint)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_way_of_showing_the_value_reads_as_aws_writes_it() {
        assert_eq!(
            invalid(
                "a b",
                "streamName",
                "Member must satisfy regular expression pattern: x"
            )
            .message,
            "1 validation error detected: Value 'a b' at 'streamName' failed to satisfy \
             constraint: Member must satisfy regular expression pattern: x"
        );
        assert_eq!(
            null("policy").message,
            "1 validation error detected: Value null at 'policy' failed to satisfy constraint: \
             Member must not be null"
        );
        assert_eq!(
            invalid_unshown("tags", "Member must have length less than or equal to 50").message,
            "1 validation error detected: Value at 'tags' failed to satisfy constraint: Member \
             must have length less than or equal to 50"
        );
    }
}
