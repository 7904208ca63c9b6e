//! `Local<T>`: a typed key for a value inherited by every child started where it is bound.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::atomic::AtomicBool;

use crate::local::frame::{self, Frame};
use crate::local::scope::LocalScope;

/// A typed key for a context value that children inherit, declared in a `static`.
///
/// Bind it for the duration of a future with [`scope`](Self::scope) (or of a closure with
/// [`sync_scope`](Self::sync_scope)), and read it with [`get`](Self::get),
/// [`with`](Self::with) or [`try_get`](Self::try_get) from that future and from everything
/// started inside it, at any depth: [`spawn`](crate::Nursery::spawn) on any worker thread,
/// [`spawn_borrowing`](crate::Nursery::spawn_borrowing), [`start`](crate::Nursery::start),
/// [`spawn_blocking`](crate::Nursery::spawn_blocking) (on its thread) and
/// [`defer`](crate::Nursery::defer)red cleanups. A child sees the values in effect where it was
/// spawned, at the moment it was spawned; binding again inside a child changes what that child
/// and its own children see, never its parent or siblings. A
/// [`NurseryHandle`](crate::NurseryHandle) used from outside the nursery's tree (another thread,
/// a plain `tokio::spawn` task, another nursery) gives its children the values in effect where
/// the nursery was opened (its first poll). [`with_locals`](crate::with_locals) carries the
/// current values into a plain `tokio::spawn`. Unlike `tokio::task_local!`, whose values stop at
/// every spawned task, nothing here has to be passed along by hand.
///
/// Reading never panics: an unbound key gives `None` (or [`LocalUnbound`]). Values are shared
/// between threads, so `T` is `Send + Sync + 'static`; `get` clones (wrap large values in an
/// `Arc`).
///
/// The key is the `static`'s address, so it must be a `static`, not a `const`: the methods
/// take `&'static self`, which a `const` cannot give.
///
/// ```compile_fail
/// const NOT_A_STATIC: tokio_nursery::Local<u32> = tokio_nursery::Local::new();
/// let _ = NOT_A_STATIC.get(); // error: a temporary is not `'static`
/// ```
///
/// # Examples
///
/// ```
/// use tokio_nursery::Local;
///
/// static REQUEST_ID: Local<String> = Local::named("request_id");
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// REQUEST_ID
///     .scope("req-42".to_string(), async {
///         tokio_nursery::nursery(|n| async move {
///             n.spawn(async {
///                 // A spawned task, possibly on another worker thread: the id came along.
///                 assert_eq!(REQUEST_ID.get().as_deref(), Some("req-42"));
///                 Ok::<_, std::io::Error>(())
///             });
///             Ok(())
///         })
///         .await
///         .unwrap();
///     })
///     .await;
/// assert_eq!(REQUEST_ID.get(), None); // unbound outside the scope
/// # }
/// ```
pub struct Local<T: 'static> {
    name: Option<&'static str>,
    /// Never read or written. Its interior mutability keeps a `Local` out of constant promotion,
    /// so the `&'static self` methods compile for a `static` only (whose address is the key),
    /// and it gives every `static` its own address.
    _anchor: AtomicBool,
    _value: PhantomData<fn() -> T>,
}

impl<T: 'static> Local<T> {
    /// A key without a name, for a `static`.
    ///
    /// ```
    /// static BUDGET: tokio_nursery::Local<u32> = tokio_nursery::Local::new();
    /// assert_eq!(BUDGET.sync_scope(3, || BUDGET.get()), Some(3));
    /// ```
    #[must_use = "a key does nothing unless declared in a `static` and bound"]
    pub const fn new() -> Self {
        Local {
            name: None,
            _anchor: AtomicBool::new(false),
            _value: PhantomData,
        }
    }

    /// A key with a name, shown in its `Debug` output and in [`LocalUnbound`].
    ///
    /// ```
    /// static USER: tokio_nursery::Local<String> = tokio_nursery::Local::named("user");
    /// assert_eq!(USER.name(), Some("user"));
    /// assert_eq!(USER.try_get().unwrap_err().to_string(), "no value bound for the Local `user`");
    /// ```
    #[must_use = "a key does nothing unless declared in a `static` and bound"]
    pub const fn named(name: &'static str) -> Self {
        Local {
            name: Some(name),
            _anchor: AtomicBool::new(false),
            _value: PhantomData,
        }
    }

    /// The name given to [`named`](Self::named).
    ///
    /// ```
    /// static ANON: tokio_nursery::Local<u8> = tokio_nursery::Local::new();
    /// assert_eq!(ANON.name(), None);
    /// ```
    pub fn name(&self) -> Option<&'static str> {
        self.name
    }

    fn key(&'static self) -> usize {
        std::ptr::from_ref(self).addr()
    }

    fn unbound(&self) -> LocalUnbound {
        LocalUnbound {
            name: self.name,
            type_name: std::any::type_name::<T>(),
        }
    }
}

impl<T: 'static> Default for Local<T> {
    fn default() -> Self {
        Local::new()
    }
}

impl<T: Send + Sync + 'static> Local<T> {
    /// Binds `value` to this key while `fut` runs: `fut`, and every child started inside it,
    /// reads `value`; other keys keep the values in effect where the scope is first polled.
    ///
    /// ```
    /// static PRINCIPAL: tokio_nursery::Local<&'static str> = tokio_nursery::Local::new();
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let who = PRINCIPAL.scope("alice", async { PRINCIPAL.get() }).await;
    /// assert_eq!(who, Some("alice"));
    /// # }
    /// ```
    pub fn scope<F: Future>(&'static self, value: T, fut: F) -> LocalScope<T, F> {
        LocalScope::new(self.key(), value, fut)
    }

    /// Binds `value` to this key while `f` runs, on this thread; children spawned inside `f`
    /// inherit it.
    ///
    /// ```
    /// static DEPTH: tokio_nursery::Local<u32> = tokio_nursery::Local::new();
    ///
    /// let inner = DEPTH.sync_scope(1, || DEPTH.sync_scope(2, || DEPTH.get()));
    /// assert_eq!(inner, Some(2));
    /// assert_eq!(DEPTH.get(), None);
    /// ```
    pub fn sync_scope<R>(&'static self, value: T, f: impl FnOnce() -> R) -> R {
        let bound = Frame::bind(self.key(), value, frame::current());
        frame::enter(Some(bound), f)
    }

    /// Calls `f` with the value bound to this key, or returns `None` if it is not bound.
    ///
    /// ```
    /// static TAGS: tokio_nursery::Local<Vec<&'static str>> = tokio_nursery::Local::new();
    ///
    /// let n = TAGS.sync_scope(vec!["a", "b"], || TAGS.with(|tags| tags.len()));
    /// assert_eq!(n, Some(2));
    /// assert_eq!(TAGS.with(|tags| tags.len()), None);
    /// ```
    pub fn with<R>(&'static self, f: impl FnOnce(&T) -> R) -> Option<R> {
        // The list is held (not borrowed from the thread-local) while `f` runs, so `f` may bind
        // and read keys itself.
        let current = frame::current()?;
        let value = current.find(self.key())?;
        value.downcast_ref::<T>().map(f)
    }

    /// [`with`](Self::with), with a typed error when the key is not bound.
    ///
    /// ```
    /// static LIMIT: tokio_nursery::Local<u64> = tokio_nursery::Local::named("limit");
    ///
    /// assert!(LIMIT.try_with(|v| *v).is_err());
    /// assert_eq!(LIMIT.sync_scope(5, || LIMIT.try_with(|v| v * 2)), Ok(10));
    /// ```
    pub fn try_with<R>(&'static self, f: impl FnOnce(&T) -> R) -> Result<R, LocalUnbound> {
        self.with(f).ok_or_else(|| self.unbound())
    }

    /// A clone of the value bound to this key, or `None` if it is not bound.
    ///
    /// ```
    /// static REQUEST_ID: tokio_nursery::Local<u64> = tokio_nursery::Local::new();
    ///
    /// assert_eq!(REQUEST_ID.get(), None);
    /// assert_eq!(REQUEST_ID.sync_scope(7, || REQUEST_ID.get()), Some(7));
    /// ```
    pub fn get(&'static self) -> Option<T>
    where
        T: Clone,
    {
        let key = self.key();
        frame::with_current(|current| lookup::<T>(current, key).cloned())
    }

    /// [`get`](Self::get), with a typed error when the key is not bound.
    ///
    /// ```
    /// static REQUEST_ID: tokio_nursery::Local<u64> = tokio_nursery::Local::named("request_id");
    ///
    /// let err = REQUEST_ID.try_get().unwrap_err();
    /// assert_eq!(err.name(), Some("request_id"));
    /// assert_eq!(REQUEST_ID.sync_scope(7, || REQUEST_ID.try_get()), Ok(7));
    /// ```
    pub fn try_get(&'static self) -> Result<T, LocalUnbound>
    where
        T: Clone,
    {
        self.get().ok_or_else(|| self.unbound())
    }

    /// Whether a value is bound to this key here.
    ///
    /// ```
    /// static FLAG: tokio_nursery::Local<bool> = tokio_nursery::Local::new();
    ///
    /// assert!(!FLAG.is_bound());
    /// assert!(FLAG.sync_scope(false, || FLAG.is_bound()));
    /// ```
    pub fn is_bound(&'static self) -> bool {
        let key = self.key();
        frame::with_current(|current| lookup::<T>(current, key).map(|_| ())).is_some()
    }
}

fn lookup<T: 'static>(frame: &Frame, key: usize) -> Option<&T> {
    let value: &dyn Any = frame.find(key)?;
    value.downcast_ref::<T>()
}

impl<T: 'static> fmt::Debug for Local<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Local")
            .field("name", &self.name)
            .field("type", &std::any::type_name::<T>())
            .finish()
    }
}

/// A [`Local`] read where no value is bound to it ([`Local::try_get`], [`Local::try_with`]).
///
/// ```
/// static SESSION: tokio_nursery::Local<u32> = tokio_nursery::Local::named("session");
///
/// let err: tokio_nursery::LocalUnbound = SESSION.try_get().unwrap_err();
/// assert_eq!(err.name(), Some("session"));
/// assert_eq!(err.type_name(), "u32");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no value bound for the Local {}", describe(*.name, .type_name))]
pub struct LocalUnbound {
    name: Option<&'static str>,
    type_name: &'static str,
}

fn describe(name: Option<&'static str>, type_name: &str) -> String {
    match name {
        Some(name) => format!("`{name}`"),
        None => format!("of type `{type_name}`"),
    }
}

impl LocalUnbound {
    /// The key's name, if it was declared with [`Local::named`].
    ///
    /// ```
    /// static K: tokio_nursery::Local<u8> = tokio_nursery::Local::new();
    /// assert_eq!(K.try_get().unwrap_err().name(), None);
    /// ```
    pub fn name(&self) -> Option<&'static str> {
        self.name
    }

    /// The type of the key's value.
    ///
    /// ```
    /// static K: tokio_nursery::Local<String> = tokio_nursery::Local::new();
    /// assert_eq!(K.try_get().unwrap_err().type_name(), "alloc::string::String");
    /// ```
    pub fn type_name(&self) -> &'static str {
        self.type_name
    }
}
