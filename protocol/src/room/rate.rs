//! A token bucket on the clock the host passes in.

use crate::wire::Millis;

/// Allows `burst` actions at once and a sustained rate. Time only ever comes from the caller;
/// a clock that goes backwards adds nothing.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    /// In units of 1/60,000 of a token, so that refill per millisecond at a rate per minute
    /// is exact integer arithmetic.
    units: u64,
    capacity: u64,
    per_minute: u64,
    last: Millis,
}

/// Units in one token.
const TOKEN: u64 = 60_000;

impl TokenBucket {
    /// A full bucket at time `now`, refilling `per_second` tokens a second.
    pub fn new(burst: u32, per_second: u32, now: Millis) -> Self {
        Self::per_minute(burst, per_second.saturating_mul(60), now)
    }

    /// A full bucket at time `now`, refilling `per_minute` tokens a minute.
    pub fn per_minute(burst: u32, per_minute: u32, now: Millis) -> Self {
        let capacity = u64::from(burst.max(1)) * TOKEN;
        Self {
            units: capacity,
            capacity,
            per_minute: u64::from(per_minute),
            last: now,
        }
    }

    fn refill(&mut self, now: Millis) {
        if now > self.last {
            let elapsed = u64::try_from(now - self.last).unwrap_or(u64::MAX);
            let added = elapsed.saturating_mul(self.per_minute);
            self.units = self.units.saturating_add(added).min(self.capacity);
            self.last = now;
        }
    }

    /// Takes one token if there is one.
    pub fn try_take(&mut self, now: Millis) -> bool {
        self.refill(now);
        if self.units >= TOKEN {
            self.units -= TOKEN;
            true
        } else {
            false
        }
    }

    /// Whether the bucket is full again at `now` (it then remembers nothing worth keeping).
    pub fn is_full(&mut self, now: Millis) -> bool {
        self.refill(now);
        self.units == self.capacity
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refill_at_the_sustained_rate() {
        let mut bucket = TokenBucket::new(3, 2, 1_000);
        assert!((0..3).all(|_| bucket.try_take(1_000)));
        assert!(!bucket.try_take(1_000));
        assert!(
            !bucket.try_take(1_499),
            "half a second at 2/s is less than one token... almost"
        );
        assert!(bucket.try_take(1_500));
        assert!(!bucket.try_take(1_500));
        // A long pause refills only up to the burst.
        assert!((0..3).all(|_| bucket.try_take(100_000)));
        assert!(!bucket.try_take(100_000));
    }

    #[test]
    fn a_clock_going_backwards_adds_nothing() {
        let mut bucket = TokenBucket::new(1, 1, 10_000);
        assert!(bucket.try_take(10_000));
        assert!(!bucket.try_take(0));
        assert!(!bucket.try_take(10_999));
        assert!(bucket.try_take(11_000));
    }

    #[test]
    fn a_rate_per_minute_refills_exactly_across_many_small_steps() {
        let mut bucket = TokenBucket::per_minute(2, 6, 0);
        assert!(bucket.try_take(0) && bucket.try_take(0));
        assert!(!bucket.is_full(0));
        // One token every 10 s, even when asked every millisecond-ish.
        assert!((1..9_999).step_by(7).all(|t| !bucket.try_take(t)));
        assert!(bucket.try_take(10_000));
        assert!(!bucket.try_take(10_000));
        assert!(bucket.is_full(30_000));
    }
}
