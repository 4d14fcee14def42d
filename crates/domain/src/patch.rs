/// A change to a nullable field in a partial update: keep the current value, clear it, or set a
/// new one. (Non-nullable fields use `Option<T>`, where `None` means "keep".)
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Patch<T> {
    /// The field was omitted: keep the stored value.
    #[default]
    Keep,
    /// The field was explicitly `null`: clear the stored value.
    Clear,
    /// Replace the stored value.
    Set(T),
}

impl<T> Patch<T> {
    /// Applies the patch to a current value.
    pub fn apply(self, current: Option<T>) -> Option<T> {
        match self {
            Self::Keep => current,
            Self::Clear => None,
            Self::Set(value) => Some(value),
        }
    }

    /// Whether the patch leaves the field as it is.
    pub fn is_keep(&self) -> bool {
        matches!(self, Self::Keep)
    }

    /// Maps the value of a `Set`.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Patch<U> {
        match self {
            Self::Keep => Patch::Keep,
            Self::Clear => Patch::Clear,
            Self::Set(value) => Patch::Set(f(value)),
        }
    }

    /// Borrows the value of a `Set`.
    pub fn as_ref(&self) -> Patch<&T> {
        match self {
            Self::Keep => Patch::Keep,
            Self::Clear => Patch::Clear,
            Self::Set(value) => Patch::Set(value),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Patch;

    #[test]
    fn apply_keeps_clears_or_sets() {
        assert_eq!(Patch::Keep.apply(Some(1)), Some(1));
        assert_eq!(Patch::<i32>::Clear.apply(Some(1)), None);
        assert_eq!(Patch::Set(2).apply(None), Some(2));
    }
}
