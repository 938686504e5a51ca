//! When the restarts of a change are due (pure: `now` is a parameter, so tests drive
//! the clock).
//!
//! The window opens at the first change that is not yet rolled out and closes
//! `debounce` later; every change written meanwhile joins it, and the restarts run once
//! when it closes. The window does not slide with each change, so a steady stream of
//! commits still rolls out every `debounce` instead of never. A window of zero rolls out
//! at once.
//!
//! Where the window's start lives: in the controller's memory ([`Pending`]) and in
//! `status.rotation.pendingSince`, so that a replica taking over (or a restarted
//! controller) still rolls out a change whose Secrets were already written: the next
//! sync sees no change of content, and without the status the restarts would be lost.
//! The earlier of the two wins (the status read from the watch cache may lag behind our
//! own last write).

use k8s_openapi::jiff::{SignedDuration, Timestamp};
use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::Duration;

/// What a sync should do about restarts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Due {
    /// No change waits.
    Nothing,
    /// A change waits; its restarts are due after this long.
    Wait(Duration),
    /// Restart now.
    Now,
}

/// The window's start after a sync: the earliest of the known starts, or `now` when
/// this sync changed a Secret and no window was open.
pub fn window_start(
    known: impl IntoIterator<Item = Option<Timestamp>>,
    changed_now: bool,
    now: Timestamp,
) -> Option<Timestamp> {
    let earliest = known.into_iter().flatten().min();
    match earliest {
        Some(t) => Some(t),
        None if changed_now => Some(now),
        None => None,
    }
}

/// Whether the restarts of a window opened at `since` are due at `now`.
pub fn due(since: Option<Timestamp>, window: Duration, now: Timestamp) -> Due {
    let Some(since) = since else {
        return Due::Nothing;
    };
    let window = SignedDuration::try_from(window).unwrap_or(SignedDuration::MAX);
    let Ok(closes) = since.checked_add(window) else {
        return Due::Wait(Duration::MAX);
    };
    if now >= closes {
        return Due::Now;
    }
    let left = now.duration_until(closes);
    Due::Wait(Duration::try_from(left).unwrap_or(Duration::ZERO))
}

/// One open window: when it opened, and the Secrets (names) changed within it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Window {
    /// When the first change of the window was written.
    pub since: Option<Timestamp>,
    /// The Secrets whose content changed within it.
    pub changed: BTreeSet<String>,
}

/// The open windows of this controller process, by owner uid. Holds timestamps and
/// Secret names only (no values).
#[derive(Debug, Default)]
pub struct Pending(Mutex<HashMap<String, Window>>);

impl Pending {
    /// The window open for `owner` (default: none).
    pub fn get(&self, owner: &str) -> Window {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(owner)
            .cloned()
            .unwrap_or_default()
    }

    /// Records the window of `owner` (`since` None: closed).
    pub fn set(&self, owner: &str, window: Window) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if window.since.is_some() {
            map.insert(owner.to_string(), window);
        } else {
            map.remove(owner);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + seconds).expect("valid")
    }

    #[test]
    fn a_zero_window_rolls_out_at_once() {
        let start = window_start([None], true, at(0));
        assert_eq!(due(start, Duration::ZERO, at(0)), Due::Now);
    }

    #[test]
    fn nothing_waits_without_a_change() {
        assert_eq!(window_start([None, None], false, at(0)), None);
        assert_eq!(due(None, Duration::from_secs(10), at(0)), Due::Nothing);
    }

    #[test]
    fn the_earliest_known_start_wins() {
        assert_eq!(
            window_start([Some(at(5)), Some(at(3))], true, at(9)),
            Some(at(3))
        );
    }

    /// The "20 changes within the window -> one rollout per workload": each
    /// change is a sync that writes; the restarts run only when the window closes, and
    /// then once.
    #[test]
    fn twenty_changes_within_the_window_are_one_rollout() {
        let window = Duration::from_secs(10);
        let pending = Pending::default();
        let mut rollouts = 0;
        let mut waits = Vec::new();
        // 20 commits, one every 400 ms: all inside the 10 s window.
        for i in 0..20 {
            let now = at(0)
                .checked_add(SignedDuration::from_millis(400 * i))
                .expect("valid");
            let start = window_start([pending.get("uid").since], true, now);
            pending.set(
                "uid",
                Window {
                    since: start,
                    changed: BTreeSet::from(["db".to_string()]),
                },
            );
            match due(start, window, now) {
                Due::Now => {
                    rollouts += 1;
                    pending.set("uid", Window::default());
                }
                Due::Wait(d) => waits.push(d),
                Due::Nothing => unreachable!("a change is pending"),
            }
        }
        assert_eq!(rollouts, 0, "nothing restarts while the window is open");
        assert_eq!(waits.first(), Some(&window));
        assert_eq!(waits.last(), Some(&Duration::from_millis(2400)));
        // The requeue when the window closes: no new change, one rollout.
        assert_eq!(pending.get("uid").changed.len(), 1);
        let start = window_start([pending.get("uid").since], false, at(10));
        assert_eq!(due(start, window, at(10)), Due::Now);
        rollouts += 1;
        pending.set("uid", Window::default());
        // And nothing after it.
        let start = window_start([pending.get("uid").since], false, at(11));
        assert_eq!(due(start, window, at(11)), Due::Nothing);
        assert_eq!(rollouts, 1);
    }

    #[test]
    fn a_steady_stream_of_changes_still_rolls_out_every_window() {
        let window = Duration::from_secs(10);
        let mut start = None;
        let mut rollouts = 0;
        for second in 0..35 {
            start = window_start([start], true, at(second));
            if due(start, window, at(second)) == Due::Now {
                rollouts += 1;
                start = None;
            }
        }
        // Windows open at 0, 11, 22, 33 and the first three close at 10, 21, 32.
        assert_eq!(rollouts, 3);
    }
}
