use crate::invalid::{InvalidKind, InvalidValue};

/// Checks a length in characters (not bytes) against inclusive bounds.
pub(crate) fn check_length(value: &str, min: usize, max: usize) -> Result<(), InvalidValue> {
    let chars = value.chars().count();
    if chars < min {
        return Err(if min == 1 {
            InvalidValue::new(InvalidKind::TooShort, "must not be empty")
        } else {
            InvalidValue::new(InvalidKind::TooShort, format!("must be at least {min} characters"))
        });
    }
    if chars > max {
        return Err(InvalidValue::new(InvalidKind::TooLong, format!("must be at most {max} characters")));
    }
    Ok(())
}

/// Rejects control characters (NUL, newlines, …), which PostgreSQL text or connection strings
/// either refuse or misread.
pub(crate) fn check_no_control(value: &str) -> Result<(), InvalidValue> {
    if value.chars().any(char::is_control) {
        return Err(InvalidValue::new(InvalidKind::PatternMismatch, "must not contain control characters"));
    }
    Ok(())
}

/// Defines a `String` newtype whose constructor enforces `$check`, with the usual accessors,
/// `Display`, `TryFrom<String>` and (behind the `serde` feature) transparent serde support that
/// validates on deserialization.
macro_rules! string_value {
    ($(#[$meta:meta])* $name:ident, |$value:ident| $check:expr) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
        #[cfg_attr(feature = "serde", serde(try_from = "String", into = "String"))]
        pub struct $name(String);

        impl $name {
            /// Parses a value, returning the broken rule if it is not valid.
            pub fn parse(value: impl Into<String>) -> Result<Self, $crate::InvalidValue> {
                let $value: String = value.into();
                let checked: Result<String, $crate::InvalidValue> = $check;
                checked.map(Self)
            }

            /// The value as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The value as an owned string.
            pub fn into_inner(self) -> String {
                self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = $crate::InvalidValue;
            fn try_from(value: String) -> Result<Self, Self::Error> {
                Self::parse(value)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }
    };
}
pub(crate) use string_value;

/// Defines a resource name: 1–255 letters, digits, `-` or `_`, lower-cased on parse so that
/// uniqueness is case-insensitive.
macro_rules! resource_name {
    ($(#[$meta:meta])* $name:ident) => {
        $crate::text::string_value!($(#[$meta])* $name, |value| {
            $crate::text::check_length(&value, 1, 255).and_then(|()| {
                if value.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
                    Ok(value.to_ascii_lowercase())
                } else {
                    Err($crate::InvalidValue::new(
                        $crate::InvalidKind::PatternMismatch,
                        "may contain only letters, digits, '-' and '_'",
                    ))
                }
            })
        });
    };
}
pub(crate) use resource_name;

string_value!(
    /// Free text of at most 255 characters without control characters (may be empty).
    ShortText,
    |value| check_length(&value, 0, 255).and_then(|()| check_no_control(&value)).map(|()| value)
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_is_counted_in_characters() {
        assert!(ShortText::parse("é".repeat(255)).is_ok());
        let err = ShortText::parse("é".repeat(256)).unwrap_err();
        assert_eq!(err.kind, InvalidKind::TooLong);
    }

    #[test]
    fn short_text_rejects_control_characters() {
        assert_eq!(ShortText::parse("a\nb").unwrap_err().kind, InvalidKind::PatternMismatch);
        assert_eq!(ShortText::parse("").unwrap().as_str(), "");
    }
}
