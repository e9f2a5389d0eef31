//! Keeping to the broker's rate limit: a `send` refused with `rate_limit:` is held for as long as the broker says
//! and sent again, so a fast pipeline is paced rather than failed.

use std::time::Duration;

use crate::wire::Ack;

/// The longest one refusal may ask to wait; a limit slower than this is a configuration to report, not to sit out.
pub const MAX_WAIT: Duration = Duration::from_secs(120);

/// How much waiting passes before the first word on stderr; each later word waits for twice as much.
const FIRST_NOTICE: Duration = Duration::from_secs(10);

/// How long a `send` refused with `error` waits before it is sent again, or `None` when the refusal is not a rate
/// limit. The broker's `retryAfterMs` when it gives one; else the time one token takes by the limit the text names
/// (the original's `rate_limit: max 60 msg/min (burst 10)`); else a second.
pub fn wait_for(error: &str, retry_after_ms: Option<u64>) -> Option<Duration> {
    if !error.starts_with("rate_limit") {
        return None;
    }
    if let Some(ms) = retry_after_ms {
        return Some(Duration::from_millis(ms.max(1)));
    }
    let per_minute = error
        .split_once("max ")
        .and_then(|(_, rest)| rest.split_once(" msg/min"))
        .and_then(|(n, _)| n.trim().parse::<f64>().ok())
        .filter(|n| n.is_finite() && *n > 0.0);
    Some(per_minute.map_or(Duration::from_secs(1), |n| {
        Duration::from_secs_f64(60.0 / n)
    }))
}

/// The waits of one connection or session: each refusal's, and a line on stderr when they add up.
#[derive(Debug, Default)]
pub struct Pacer {
    waited: Duration,
    told_at: Duration,
}

impl Pacer {
    /// How long to hold a send the broker answered with `ack` before sending it again; `None` when the refusal is
    /// final (not a rate limit, or a wait over [`MAX_WAIT`]).
    pub fn wait(&mut self, ack: &Ack) -> Option<Duration> {
        let error = ack.error.as_deref()?;
        let d = wait_for(error, ack.retry_after_ms).filter(|d| *d <= MAX_WAIT)?;
        self.waited += d;
        let next = if self.told_at.is_zero() {
            FIRST_NOTICE
        } else {
            self.told_at * 2
        };
        if self.waited >= next {
            self.told_at = self.waited;
            let limit = error
                .trim_start_matches("rate_limit:")
                .trim_end_matches("slow down")
                .trim_end_matches([' ', '—', '-']);
            crate::out::notice(format!(
                "paced by the broker's rate limit ({}): {} s of waiting so far",
                limit.trim(),
                self.waited.as_secs()
            ));
        }
        Some(d)
    }

    /// The waiting so far.
    pub fn waited(&self) -> Duration {
        self.waited
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(error: &str, after: Option<u64>) -> Ack {
        let mut a = Ack::refused("x", error);
        a.retry_after_ms = after;
        a
    }

    #[test]
    fn the_wait_is_the_brokers_else_one_tokens_time() {
        assert_eq!(
            wait_for(
                "rate_limit: max 3000 msg/min (burst 100) — slow down",
                Some(20)
            ),
            Some(Duration::from_millis(20))
        );
        // The original broker names its limit and nothing more.
        assert_eq!(
            wait_for("rate_limit: max 60 msg/min (burst 10) — slow down", None),
            Some(Duration::from_secs(1))
        );
        assert_eq!(
            wait_for("rate_limit: max 3000 msg/min (burst 100)", None),
            Some(Duration::from_millis(20))
        );
        assert_eq!(
            wait_for("rate_limit: slow down", None),
            Some(Duration::from_secs(1))
        );
        assert_eq!(
            wait_for("rate_limit: max 0 msg/min", None),
            Some(Duration::from_secs(1))
        );
        assert_eq!(wait_for("payload too large: 70000 bytes", Some(5)), None);
    }

    #[test]
    fn a_refusal_that_asks_too_much_is_final() {
        let mut p = Pacer::default();
        assert_eq!(
            p.wait(&refused("rate_limit: slow down", Some(250))),
            Some(Duration::from_millis(250))
        );
        assert_eq!(
            p.wait(&refused("rate_limit: slow down", Some(121_000))),
            None
        );
        assert_eq!(p.wait(&refused("unknown target: x", None)), None);
        assert_eq!(p.waited(), Duration::from_millis(250));
    }
}
