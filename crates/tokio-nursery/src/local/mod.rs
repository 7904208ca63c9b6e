//! Context values inherited by children: [`Local`](crate::Local) keys (DESIGN §7).
//!
//! `frame` is the persistent map of bindings (an `Arc` linked list, innermost binding first) and
//! the thread-local that holds the current one while something is polled or run; `key` is the
//! typed key users declare in a `static`; `scope` holds the futures that bind one value
//! (`LocalScope`) or carry a captured set (`WithLocals`). The rest of the crate captures the
//! current frame where a child, cleanup or blocking closure is created (`frame::current`) and
//! installs it while that child runs (`frame::Installed`). Nothing here imports the rest of the
//! crate.

pub(crate) mod frame;
pub(crate) mod key;
pub(crate) mod scope;
