//! Retry delays: exponential backoff with jitter, shared by the hub (which
//! configures it) and the store (which applies it when a failure is retried).

use std::time::Duration;

/// How failed tasks are retried.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    pub initial: Duration,
    pub factor: f64,
    pub max: Duration,
}

impl RetryPolicy {
    /// The delay before retry number `failures` (1 for the first retry):
    /// `initial * factor^(failures-1)`, capped at `max`, then a random point
    /// in its upper half so that retries of many tasks spread out.
    pub fn delay(&self, failures: u32, random_unit: f64) -> Duration {
        let exp = self
            .factor
            .max(1.0)
            .powi(failures.saturating_sub(1).min(60) as i32);
        let base = (self.initial.as_secs_f64() * exp).min(self.max.as_secs_f64());
        let jittered = base * (0.5 + 0.5 * random_unit.clamp(0.0, 1.0));
        Duration::from_secs_f64(jittered)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_exponentially_up_to_the_cap_with_bounded_jitter() {
        let p = RetryPolicy {
            initial: Duration::from_millis(100),
            factor: 2.0,
            max: Duration::from_secs(1),
        };
        assert_eq!(p.delay(1, 1.0), Duration::from_millis(100));
        assert_eq!(p.delay(2, 1.0), Duration::from_millis(200));
        assert_eq!(p.delay(3, 1.0), Duration::from_millis(400));
        assert_eq!(p.delay(10, 1.0), Duration::from_secs(1));
        assert_eq!(p.delay(10, 0.0), Duration::from_millis(500));
        assert_eq!(p.delay(1, 0.5), Duration::from_millis(75));
    }
}
