use chrono::{DurationRound, TimeDelta, Utc};
use rosetta_domain::Timestamp;
use rosetta_ports::outbound::Clock;

/// The system clock, truncated to microseconds (PostgreSQL's `timestamptz` precision) so a
/// timestamp returned by a write equals the one read back later.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let now = Utc::now();
        now.duration_trunc(TimeDelta::microseconds(1)).unwrap_or(now)
    }
}

#[cfg(test)]
mod tests {
    use chrono::Timelike;

    use super::*;

    #[test]
    fn now_has_microsecond_precision() {
        assert_eq!(SystemClock.now().nanosecond() % 1_000, 0);
    }
}
