use std::fmt;

/// Which rule a value broke. The names follow the error `type`s clients of the original
/// service already know (`string_too_long`, `greater_than_equal`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InvalidKind {
    /// Shorter than the minimum length.
    TooShort,
    /// Longer than the maximum length.
    TooLong,
    /// Contains characters outside the allowed set, or does not match the required shape.
    PatternMismatch,
    /// Below the minimum value.
    TooSmall,
    /// Above the maximum value.
    TooLarge,
}

impl InvalidKind {
    /// A stable machine-readable code for the rule.
    pub fn code(self) -> &'static str {
        match self {
            Self::TooShort => "string_too_short",
            Self::TooLong => "string_too_long",
            Self::PatternMismatch => "string_pattern_mismatch",
            Self::TooSmall => "greater_than_equal",
            Self::TooLarge => "less_than_equal",
        }
    }
}

/// A value that breaks an invariant of a domain type. The message is safe to show to a client:
/// it never repeats the rejected input (which may be a secret).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct InvalidValue {
    /// The rule that was broken.
    pub kind: InvalidKind,
    /// A human-readable explanation, e.g. "must be at most 255 characters".
    pub message: String,
}

impl InvalidValue {
    pub(crate) fn new(kind: InvalidKind, message: impl Into<String>) -> Self {
        Self { kind, message: message.into() }
    }
}

impl fmt::Display for InvalidValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}
