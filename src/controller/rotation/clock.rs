//! The clock the InPlace debounce window is read against.
//!
//! In a cluster this is the system clock. sopsync's own integration tests need to close
//! a long window (say 1h) without waiting for it, and without a timing threshold
//! deciding the verdict (issue 12: "debounce tests use an injectable clock, not
//! sleeps"). They start the controller with the hidden flag `--test-clock-offset-file
//! PATH` and write a whole number of seconds to that file; every reading of the clock
//! adds it. The flag is refused unless the environment says
//! `SOPSYNC_ENABLE_TEST_CLOCK=1` as well, so a stray flag in a deployment cannot move
//! rollouts in time by accident.
//!
//! Only the debounce window reads this clock: status timestamps, leases and rollout
//! timeouts keep the system clock.

use k8s_openapi::jiff::{SignedDuration, Timestamp};
use std::path::{Path, PathBuf};

/// The environment variable that must be `1` for `--test-clock-offset-file` to be
/// accepted.
pub const ENABLE_ENV: &str = "SOPSYNC_ENABLE_TEST_CLOCK";

/// The largest offset accepted: ten years either way (a typo should not overflow).
const MAX_OFFSET_SECONDS: i64 = 10 * 366 * 24 * 3600;

/// The clock of the debounce window: the system clock, plus the offset a test wrote
/// in its file (if any).
#[derive(Clone, Debug, Default)]
pub struct Clock {
    offset_file: Option<PathBuf>,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Clock {
        Clock::default()
    }

    /// The test clock: the system clock shifted by the seconds in `file`, or why it is
    /// refused (`enabled` is whether [`ENABLE_ENV`] is `1`).
    pub fn with_offset_file(file: PathBuf, enabled: bool) -> Result<Clock, String> {
        if !enabled {
            return Err(format!(
                "--test-clock-offset-file {}: this flag shifts the clock of rotation's debounce window and exists for sopsync's own tests; it is refused unless {ENABLE_ENV}=1 is also set (never set it in a cluster)",
                file.display()
            ));
        }
        Ok(Clock {
            offset_file: Some(file),
        })
    }

    /// Whether this clock may differ from the system clock.
    pub fn is_shifted(&self) -> bool {
        self.offset_file.is_some()
    }

    /// Now, by this clock.
    pub fn now(&self) -> Timestamp {
        let now = Timestamp::now();
        let Some(file) = &self.offset_file else {
            return now;
        };
        let offset = read_offset(file);
        now.checked_add(SignedDuration::from_secs(offset))
            .unwrap_or(now)
    }
}

/// The offset in `file`: a missing file is no offset (the test has not moved the clock
/// yet); an unreadable or malformed one is logged and counts as none.
fn read_offset(file: &Path) -> i64 {
    let bytes = match crate::small_file::read_small_file(file, 64) {
        Ok(b) => b,
        Err(crate::small_file::SmallFileError::Io(e))
            if e.kind() == std::io::ErrorKind::NotFound =>
        {
            return 0
        }
        Err(e) => {
            tracing::warn!(path = %file.display(), error = %e, "test clock: offset file unreadable, no offset");
            return 0;
        }
    };
    match parse_offset(&bytes) {
        Some(s) => s,
        None => {
            tracing::warn!(path = %file.display(), "test clock: expected a whole number of seconds, no offset");
            0
        }
    }
}

/// A whole number of seconds (optionally signed, surrounding whitespace allowed) within
/// [`MAX_OFFSET_SECONDS`].
fn parse_offset(bytes: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(bytes).ok()?.trim();
    let seconds: i64 = text.parse().ok()?;
    (seconds.abs() <= MAX_OFFSET_SECONDS).then_some(seconds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_test_clock_is_refused_unless_explicitly_enabled() {
        let err = Clock::with_offset_file("/tmp/x".into(), false).expect_err("refused");
        assert!(err.contains(ENABLE_ENV), "{err}");
        assert!(Clock::with_offset_file("/tmp/x".into(), true)
            .expect("enabled")
            .is_shifted());
        assert!(!Clock::system().is_shifted());
    }

    #[test]
    fn offsets_are_whole_seconds_within_bounds() {
        assert_eq!(parse_offset(b"3601\n"), Some(3601));
        assert_eq!(parse_offset(b" -5 "), Some(-5));
        for bad in [&b""[..], b"1.5", b"1h", b"99999999999999"] {
            assert_eq!(parse_offset(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_missing_offset_file_is_no_offset() {
        let dir = tempfile::tempdir().expect("tempdir");
        let clock = Clock::with_offset_file(dir.path().join("absent"), true).expect("enabled");
        let before = Timestamp::now();
        let now = clock.now();
        // Not a timing threshold: a clock without offset is never behind the system's.
        assert!(now >= before);
        std::fs::write(dir.path().join("absent"), "7200").expect("write");
        assert!(clock.now() >= before + SignedDuration::from_secs(7200));
    }
}
