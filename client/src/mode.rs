//! [`LockMode`]: exclusive or shared.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Exclusive or shared.
///
/// Any number of sessions may hold a month in shared mode at once; an exclusive holder excludes
/// all others. Serialized, printed and parsed as `"exclusive"` / `"shared"`, as in the
/// `month_locks` view; any other text is rejected.
///
/// ```
/// use month_lock_client::LockMode;
/// assert_eq!(LockMode::Shared.to_string(), "shared");
/// assert_eq!(serde_json::to_string(&LockMode::Exclusive).unwrap(), "\"exclusive\"");
/// assert_eq!("shared".parse::<LockMode>().unwrap(), LockMode::Shared);
/// assert!("Share".parse::<LockMode>().is_err());
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LockMode {
    /// One holder at a time (the default).
    #[default]
    Exclusive,
    /// Many shared holders at a time, no exclusive holder meanwhile.
    Shared,
}

impl LockMode {
    /// `"exclusive"` or `"shared"`.
    ///
    /// ```
    /// assert_eq!(month_lock_client::LockMode::Exclusive.as_str(), "exclusive");
    /// ```
    pub const fn as_str(self) -> &'static str {
        match self {
            LockMode::Exclusive => "exclusive",
            LockMode::Shared => "shared",
        }
    }
}

impl fmt::Display for LockMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Text that is neither `exclusive` nor `shared`.
///
/// ```
/// let err = "update".parse::<month_lock_client::LockMode>().unwrap_err();
/// assert_eq!(err.to_string(), "invalid lock mode \"update\": expected \"exclusive\" or \"shared\"");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid lock mode {0:?}: expected \"exclusive\" or \"shared\"")]
pub struct InvalidLockMode(pub String);

impl FromStr for LockMode {
    type Err = InvalidLockMode;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "exclusive" => Ok(LockMode::Exclusive),
            "shared" => Ok(LockMode::Shared),
            other => Err(InvalidLockMode(other.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_unknown_values() {
        for mode in [LockMode::Exclusive, LockMode::Shared] {
            assert_eq!(mode.to_string().parse::<LockMode>(), Ok(mode));
        }
        for bad in ["", "Exclusive", "share", "exclusive "] {
            assert!(bad.parse::<LockMode>().is_err(), "{bad:?}");
        }
    }
}
