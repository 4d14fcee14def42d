use crate::invalid::{InvalidKind, InvalidValue};

/// The number of items a list returns at most: 1–1000, default 100.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(try_from = "u32", into = "u32"))]
pub struct PageLimit(u32);

impl PageLimit {
    /// The largest page.
    pub const MAX: u32 = 1000;
    /// The page size when none is asked for.
    pub const DEFAULT: Self = Self(100);

    /// Parses a limit in 1–1000.
    pub fn new(limit: u32) -> Result<Self, InvalidValue> {
        match limit {
            0 => Err(InvalidValue::new(InvalidKind::TooSmall, "must be at least 1")),
            l if l > Self::MAX => {
                Err(InvalidValue::new(InvalidKind::TooLarge, format!("must be at most {}", Self::MAX)))
            }
            l => Ok(Self(l)),
        }
    }

    /// The limit.
    pub fn get(self) -> u32 {
        self.0
    }
}

impl Default for PageLimit {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl TryFrom<u32> for PageLimit {
    type Error = InvalidValue;
    fn try_from(value: u32) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<PageLimit> for u32 {
    fn from(value: PageLimit) -> u32 {
        value.0
    }
}

/// Which slice of a list ordered by id ascending to return.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PageRequest {
    /// How many items to skip.
    pub skip: u64,
    /// How many items to return at most.
    pub limit: PageLimit,
}

/// One page of a list plus the total number of items in the whole list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    /// The items of this page, ordered by id ascending.
    pub items: Vec<T>,
    /// How many items the whole list has.
    pub total: u64,
}

impl<T> Page<T> {
    /// Whether a page follows this one.
    pub fn has_next(&self, request: PageRequest) -> bool {
        request.skip.saturating_add(u64::from(request.limit.get())) < self.total
    }

    /// Maps every item.
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page { items: self.items.into_iter().map(f).collect(), total: self.total }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_bounds() {
        assert!(PageLimit::new(0).is_err());
        assert!(PageLimit::new(1001).is_err());
        assert_eq!(PageLimit::new(1000).unwrap().get(), 1000);
        assert_eq!(PageLimit::default().get(), 100);
    }

    #[test]
    fn has_next_only_before_the_last_page() {
        let page = Page { items: vec![(); 10], total: 25 };
        let at = |skip| PageRequest { skip, limit: PageLimit::new(10).unwrap() };
        assert!(page.has_next(at(0)));
        assert!(page.has_next(at(10)));
        assert!(!page.has_next(at(20)));
    }
}
