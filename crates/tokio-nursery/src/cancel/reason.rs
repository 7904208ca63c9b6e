//! `CancelReason`: why a node was cancelled, kept by the first `cancel` and inherited (wrapped)
//! by everything under it; rendered in trees and in the errors of `fail_after`.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

/// Why a scope, nursery or child was cancelled.
///
/// The first reason given to a scope wins; later `cancel` calls do not replace it. Reasons render
/// like trio's: `cancelled: deadline exceeded`,
/// `cancelled: child "watcher" failed: connection lost (peer closed)`.
///
/// # Examples
///
/// ```
/// use tokio_nursery::{CancelReason, CancelScope};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let scope = CancelScope::new();
/// let handle = scope.handle();
/// handle.cancel_with("shutting down");
/// handle.cancel(); // ignored: the first reason wins
/// let reason = handle.cancel_reason().unwrap();
/// assert!(reason.is_explicit());
/// assert_eq!(reason.message(), Some("shutting down"));
/// assert_eq!(reason.to_string(), "cancelled: shutting down");
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CancelReason {
    /// `cancel()` or `cancel_with(message)` was called.
    Explicit {
        /// The message given to `cancel_with`, if any.
        message: Option<Cow<'static, str>>,
    },
    /// The scope's deadline passed.
    Deadline,
    /// A child of the nursery returned an error; `message` is the error's `Display`.
    ChildFailed {
        /// The child's name, if it was spawned with one.
        child: Option<Arc<str>>,
        /// The error rendered with `Display` when it happened.
        message: String,
    },
    /// A child of the nursery panicked; `message` is the panic payload, if it was a string.
    ChildPanicked {
        /// The child's name, if it was spawned with one.
        child: Option<Arc<str>>,
        /// The panic message.
        message: String,
    },
    /// The nursery's body returned an error.
    BodyFailed {
        /// The error rendered with `Display`.
        message: String,
    },
    /// The nursery's body panicked.
    BodyPanicked {
        /// The panic message.
        message: String,
    },
    /// A deferred cleanup returned an error or panicked.
    CleanupFailed {
        /// The error or panic message.
        message: String,
    },
    /// `fail(e)` was called on the nursery's handle.
    Failed {
        /// The error rendered with `Display`.
        message: String,
    },
    /// The nursery future was dropped by foreign code before it completed.
    NurseryDropped,
    /// An enclosing scope was cancelled; the reason it gave is inside.
    ParentCancelled(Arc<CancelReason>),
}

impl CancelReason {
    pub(crate) fn explicit(message: Option<Cow<'static, str>>) -> Self {
        CancelReason::Explicit { message }
    }

    /// The reason the cancellation started with: unwraps `ParentCancelled`.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use tokio_nursery::CancelReason;
    ///
    /// let inherited = CancelReason::ParentCancelled(Arc::new(CancelReason::Deadline));
    /// assert_eq!(inherited.origin(), &CancelReason::Deadline);
    /// ```
    pub fn origin(&self) -> &CancelReason {
        let mut reason = self;
        while let CancelReason::ParentCancelled(inner) = reason {
            reason = inner;
        }
        reason
    }

    /// `true` if this scope was cancelled because an enclosing one was.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use tokio_nursery::CancelReason;
    ///
    /// assert!(CancelReason::ParentCancelled(Arc::new(CancelReason::Deadline)).is_inherited());
    /// assert!(!CancelReason::Deadline.is_inherited());
    /// ```
    pub fn is_inherited(&self) -> bool {
        matches!(self, CancelReason::ParentCancelled(_))
    }

    /// `true` if the cancellation started with `cancel()` or `cancel_with()`.
    ///
    /// ```
    /// let scope = tokio_nursery::CancelScope::new();
    /// scope.handle().cancel();
    /// assert!(scope.handle().cancel_reason().unwrap().is_explicit());
    /// ```
    pub fn is_explicit(&self) -> bool {
        matches!(self.origin(), CancelReason::Explicit { .. })
    }

    /// `true` if the cancellation started with a deadline.
    ///
    /// ```
    /// assert!(tokio_nursery::CancelReason::Deadline.is_deadline());
    /// ```
    pub fn is_deadline(&self) -> bool {
        matches!(self.origin(), CancelReason::Deadline)
    }

    /// `true` if the cancellation started with a failure: a child, body or cleanup error or
    /// panic, or `fail(e)`.
    ///
    /// ```
    /// let reason = tokio_nursery::CancelReason::BodyFailed { message: "boom".into() };
    /// assert!(reason.is_failure());
    /// assert!(!tokio_nursery::CancelReason::Deadline.is_failure());
    /// ```
    pub fn is_failure(&self) -> bool {
        matches!(
            self.origin(),
            CancelReason::ChildFailed { .. }
                | CancelReason::ChildPanicked { .. }
                | CancelReason::BodyFailed { .. }
                | CancelReason::BodyPanicked { .. }
                | CancelReason::CleanupFailed { .. }
                | CancelReason::Failed { .. }
        )
    }

    /// The message carried by the origin, if any (the error's `Display`, or `cancel_with`'s text).
    ///
    /// ```
    /// let reason = tokio_nursery::CancelReason::Failed { message: "lost".into() };
    /// assert_eq!(reason.message(), Some("lost"));
    /// assert_eq!(tokio_nursery::CancelReason::Deadline.message(), None);
    /// ```
    pub fn message(&self) -> Option<&str> {
        match self.origin() {
            CancelReason::Explicit { message } => message.as_deref(),
            CancelReason::ChildFailed { message, .. }
            | CancelReason::ChildPanicked { message, .. }
            | CancelReason::BodyFailed { message }
            | CancelReason::BodyPanicked { message }
            | CancelReason::CleanupFailed { message }
            | CancelReason::Failed { message } => Some(message),
            _ => None,
        }
    }

    /// The name of the child whose failure started the cancellation, if it had one.
    ///
    /// ```
    /// let reason = tokio_nursery::CancelReason::ChildFailed {
    ///     child: Some("watcher".into()),
    ///     message: "peer closed".into(),
    /// };
    /// assert_eq!(reason.child_name(), Some("watcher"));
    /// ```
    pub fn child_name(&self) -> Option<&str> {
        match self.origin() {
            CancelReason::ChildFailed { child, .. } | CancelReason::ChildPanicked { child, .. } => {
                child.as_deref()
            }
            _ => None,
        }
    }
}

impl fmt::Display for CancelReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let child = |f: &mut fmt::Formatter<'_>, name: &Option<Arc<str>>| match name {
            Some(name) => write!(f, "child {name:?}"),
            None => f.write_str("child"),
        };
        match self {
            CancelReason::Explicit { message: None } => f.write_str("cancelled"),
            CancelReason::Explicit { message: Some(m) } => write!(f, "cancelled: {m}"),
            CancelReason::Deadline => f.write_str("cancelled: deadline exceeded"),
            CancelReason::ChildFailed {
                child: name,
                message,
            } => {
                f.write_str("cancelled: ")?;
                child(f, name)?;
                write!(f, " failed: {message}")
            }
            CancelReason::ChildPanicked {
                child: name,
                message,
            } => {
                f.write_str("cancelled: ")?;
                child(f, name)?;
                write!(f, " panicked: {message}")
            }
            CancelReason::BodyFailed { message } => {
                write!(f, "cancelled: nursery body failed: {message}")
            }
            CancelReason::BodyPanicked { message } => {
                write!(f, "cancelled: nursery body panicked: {message}")
            }
            CancelReason::CleanupFailed { message } => {
                write!(f, "cancelled: cleanup failed: {message}")
            }
            CancelReason::Failed { message } => write!(f, "cancelled: nursery failed: {message}"),
            CancelReason::NurseryDropped => {
                f.write_str("cancelled: nursery dropped before it completed")
            }
            CancelReason::ParentCancelled(origin) => fmt::Display::fmt(origin, f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_like_trio() {
        let r = CancelReason::ChildFailed {
            child: Some("watcher".into()),
            message: "connection lost (peer closed)".into(),
        };
        assert_eq!(
            r.to_string(),
            "cancelled: child \"watcher\" failed: connection lost (peer closed)"
        );
        assert_eq!(
            CancelReason::Deadline.to_string(),
            "cancelled: deadline exceeded"
        );
        let inherited = CancelReason::ParentCancelled(Arc::new(r.clone()));
        assert_eq!(inherited.to_string(), r.to_string());
        assert_eq!(inherited.child_name(), Some("watcher"));
        assert!(inherited.is_failure() && inherited.is_inherited());
    }
}
