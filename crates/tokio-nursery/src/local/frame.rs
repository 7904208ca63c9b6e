//! The bindings in effect: an immutable linked list of frames, and the thread-local that holds
//! the current list while a future is polled (or a closure runs).
//!
//! A frame is never changed after it is built, so capturing the current bindings is one
//! `Option<Arc>` clone (nothing at all when none are bound), and a child, cleanup or blocking
//! closure keeps exactly the bindings of the moment it was created, whatever its spawner binds
//! later. Binding a value builds one frame (one allocation) whose parent is the list in effect.
//!
//! Every install is paired with a restore on the same thread within the same poll (or call),
//! also when it unwinds, so the thread-local holds nothing between polls of unrelated tasks.
//! Values are dropped outside the thread-local's borrow: a value's `Drop` may read `Local`s.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::fmt;
use std::sync::Arc;

/// One binding and the bindings it was made inside. Unsized: the value is stored inline, so a
/// binding is a single allocation.
pub(crate) struct Frame<V: ?Sized = dyn Any + Send + Sync> {
    /// The address of the `static` key.
    key: usize,
    parent: Option<Link>,
    value: V,
}

/// A shared list of bindings, innermost first.
pub(crate) type Link = Arc<Frame>;

impl Frame {
    /// A frame binding `key` to `value` inside `parent`.
    pub(crate) fn bind<T: Any + Send + Sync>(key: usize, value: T, parent: Option<Link>) -> Link {
        Arc::new(Frame { key, parent, value })
    }

    /// The innermost value bound to `key` in this list.
    pub(crate) fn find(&self, key: usize) -> Option<&(dyn Any + Send + Sync)> {
        let mut frame = self;
        loop {
            if frame.key == key {
                return Some(&frame.value);
            }
            frame = frame.parent.as_deref()?;
        }
    }

    /// How many bindings the list holds (a rebound key counts each time).
    pub(crate) fn len(&self) -> usize {
        let mut n = 1;
        let mut frame = self;
        while let Some(parent) = frame.parent.as_deref() {
            n += 1;
            frame = parent;
        }
        n
    }
}

impl<V: ?Sized> Drop for Frame<V> {
    /// Iterative: a chain built by children rebinding at every level (each spawned from the
    /// previous one) can be longer than the stack allows to recurse.
    fn drop(&mut self) {
        let mut next = self.parent.take();
        while let Some(mut link) = next {
            next = Arc::get_mut(&mut link).and_then(|frame| frame.parent.take());
        }
    }
}

impl fmt::Debug for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Frame")
            .field("bindings", &self.len())
            .finish_non_exhaustive()
    }
}

thread_local! {
    static CURRENT: RefCell<Option<Link>> = const { RefCell::new(None) };
    /// `CURRENT.is_some()`, kept beside it: a `Copy` thread-local without a destructor, so the
    /// check children make at every spawn and poll is a single load when nothing is bound.
    static ANY: Cell<bool> = const { Cell::new(false) };
}

/// Replaces the bindings in effect, keeping `ANY` in step.
#[inline]
fn replace(frame: Option<Link>) -> Result<Option<Link>, std::thread::AccessError> {
    let any = frame.is_some();
    let prev = CURRENT.try_with(|current| current.replace(frame))?;
    ANY.set(any);
    Ok(prev)
}

/// The bindings in effect on this thread (none outside any binding, and during thread teardown).
#[inline]
pub(crate) fn current() -> Option<Link> {
    if !ANY.get() {
        return None;
    }
    CURRENT
        .try_with(|current| current.borrow().clone())
        .ok()
        .flatten()
}

/// Runs `f` on the bindings in effect, borrowed (no reference count is touched); `None` if
/// nothing is bound.
#[inline]
pub(crate) fn with_current<R>(f: impl FnOnce(&Frame) -> Option<R>) -> Option<R> {
    if !ANY.get() {
        return None;
    }
    CURRENT
        .try_with(|current| current.borrow().as_deref().and_then(f))
        .ok()
        .flatten()
}

/// `true` if nothing is bound on this thread: the check that lets a child without bindings skip
/// installing its (empty) list.
#[inline]
pub(crate) fn nothing_installed() -> bool {
    !ANY.get()
}

/// Installs `frame` for one poll, unless both it and what is installed are empty (the common
/// case, which then costs one thread-local read). `Installed::leave` puts it back.
#[inline]
pub(crate) fn install(frame: &mut Option<Link>) -> Option<Installed> {
    if frame.is_none() && nothing_installed() {
        return None;
    }
    Some(Installed::enter(frame.take()))
}

/// `true` if both name the same list (or both are empty).
pub(crate) fn same(a: Option<&Link>, b: Option<&Link>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => Arc::ptr_eq(a, b),
        (None, None) => true,
        _ => false,
    }
}

/// Bindings installed on this thread for one poll or call; `exit` (or `Drop`, when unwinding)
/// restores what was there before. Two thread-local accesses in all, and no reference count:
/// the lists are moved in and out.
#[must_use = "the bindings are restored when the guard is dropped"]
pub(crate) struct Installed {
    prev: Option<Link>,
    armed: bool,
}

impl Installed {
    /// Installs `frame` as the bindings in effect. During thread teardown, when the thread-local
    /// is gone, installs nothing (and `frame` is dropped).
    #[inline]
    pub(crate) fn enter(frame: Option<Link>) -> Installed {
        match replace(frame) {
            Ok(prev) => Installed { prev, armed: true },
            Err(_) => Installed {
                prev: None,
                armed: false,
            },
        }
    }

    /// Restores the previous bindings and returns the installed ones, as the poll left them.
    #[inline]
    pub(crate) fn exit(mut self) -> Option<Link> {
        if !self.armed {
            return None;
        }
        self.armed = false;
        let prev = self.prev.take();
        replace(prev).ok().flatten()
    }

    /// Ends an `install`: restores the previous bindings and puts the list back in `frame`.
    #[inline]
    pub(crate) fn leave(installed: Option<Installed>, frame: &mut Option<Link>) {
        if let Some(installed) = installed {
            *frame = installed.exit();
        }
    }
}

impl Drop for Installed {
    #[inline]
    fn drop(&mut self) {
        if self.armed {
            let prev = self.prev.take();
            let mine = replace(prev);
            drop(mine);
        }
    }
}

impl fmt::Debug for Installed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Installed").finish_non_exhaustive()
    }
}

/// Runs `f` with `frame` as the bindings in effect.
#[inline]
pub(crate) fn enter<R>(frame: Option<Link>, f: impl FnOnce() -> R) -> R {
    let installed = Installed::enter(frame);
    let out = f();
    drop(installed.exit());
    out
}
