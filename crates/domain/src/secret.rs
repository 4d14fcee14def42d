use std::fmt;

use crate::invalid::{InvalidKind, InvalidValue};

/// A write-only secret (a database password, a key passphrase).
///
/// `Debug` never shows it and there is no `Display` nor `Serialize`: the only way to read it is
/// [`Secret::expose`], so every place that handles the plaintext is explicit and greppable.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The longest secret accepted, in characters.
    pub const MAX_CHARS: usize = 1024;

    /// Wraps a secret: 1–1024 characters (use "no secret" rather than an empty one).
    pub fn parse(value: impl Into<String>) -> Result<Self, InvalidValue> {
        let value = value.into();
        let chars = value.chars().count();
        if chars == 0 {
            return Err(InvalidValue::new(InvalidKind::TooShort, "must not be empty (send null to remove it)"));
        }
        if chars > Self::MAX_CHARS {
            return Err(InvalidValue::new(
                InvalidKind::TooLong,
                format!("must be at most {} characters", Self::MAX_CHARS),
            ));
        }
        Ok(Self(value))
    }

    /// The plaintext. Call only where the secret must leave the process (encryption, a
    /// connection to the source).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::Secret;

    #[test]
    fn debug_never_shows_the_secret() {
        let secret = Secret::parse("hunter2").unwrap();
        assert_eq!(format!("{secret:?}"), "Secret(***)");
        assert_eq!(secret.expose(), "hunter2");
    }

    #[test]
    fn empty_and_huge_secrets_are_rejected() {
        assert!(Secret::parse("").is_err());
        assert!(Secret::parse("x".repeat(1025)).is_err());
        assert!(Secret::parse("x".repeat(1024)).is_ok());
    }
}
