//! The errors this crate gives back.

/// The error a plain HTTP response body ends with when the request's scope ended in the middle of
/// it (its deadline passed, a child failed): the status line is already sent, so the client sees
/// an incomplete body instead.
///
/// ```
/// # fn f(e: &nursery_tower::ResponseCut) {
/// println!("{e}: {}", e.message());
/// # }
/// ```
#[derive(Debug, Clone, thiserror::Error)]
#[error("response cut short: {message}")]
pub struct ResponseCut {
    pub(crate) message: &'static str,
}

impl ResponseCut {
    /// Why: `deadline exceeded`, `request failed`, `server shutting down`.
    ///
    /// ```
    /// # fn f(e: &nursery_tower::ResponseCut) {
    /// let _why: &str = e.message();
    /// # }
    /// ```
    pub fn message(&self) -> &'static str {
        self.message
    }
}
