//! Source locations of spawn and start calls, kept as 4-byte ids.
//!
//! A roster slot has 4 spare bytes beside its handle count and no room for an 8-byte
//! `&'static Location`, so a child's spawn site is interned: every distinct location gets a small
//! id once, and the slot keeps the id. Children are spawned from few places many times (a loop,
//! an accept loop), so each thread remembers the last location it interned and a repeat spawn
//! from the same place costs a pointer comparison; only a new place takes the table's lock.
//!
//! Invariants
//!
//!  1. An id, once given to a location, names it for the life of the process; ids are never
//!     reused, so a stale id in a slot still resolves to its own location.
//!  2. Id 0 is "no location" and is never given out.
//!
//! Lock order: the table's lock is a leaf: nothing else is locked while it is held.

use std::cell::Cell;
use std::collections::HashMap;
use std::panic::Location;
use std::sync::{LazyLock, PoisonError, RwLock};

type Site = &'static Location<'static>;

/// A location's id; 0 is none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct LocationId(u32);

impl LocationId {
    /// No location recorded.
    pub(crate) const NONE: LocationId = LocationId(0);

    /// The id of `site`, interning it the first time it is seen.
    pub(crate) fn of(site: Site) -> LocationId {
        LAST.with(|last| match last.get() {
            Some((seen, id)) if std::ptr::eq(seen, site) => id,
            _ => {
                let id = intern(site);
                last.set(Some((site, id)));
                id
            }
        })
    }

    /// The location this id names, if any.
    pub(crate) fn resolve(self) -> Option<Site> {
        let index = usize::try_from(self.0.checked_sub(1)?).ok()?;
        let table = TABLE.read().unwrap_or_else(PoisonError::into_inner);
        table.sites.get(index).copied()
    }
}

#[derive(Default)]
struct Table {
    sites: Vec<Site>,
    ids: HashMap<usize, LocationId>,
}

static TABLE: LazyLock<RwLock<Table>> = LazyLock::new(RwLock::default);

thread_local! {
    static LAST: Cell<Option<(Site, LocationId)>> = const { Cell::new(None) };
}

fn intern(site: Site) -> LocationId {
    let key = std::ptr::from_ref(site) as usize;
    if let Some(&id) = TABLE
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .ids
        .get(&key)
    {
        return id;
    }
    let mut table = TABLE.write().unwrap_or_else(PoisonError::into_inner);
    if let Some(&id) = table.ids.get(&key) {
        return id;
    }
    // More than 4 billion distinct spawn sites cannot happen in one program; if it did, the
    // newest would show no location rather than another site's.
    let Ok(next) = u32::try_from(table.sites.len() + 1) else {
        return LocationId::NONE;
    };
    table.sites.push(site);
    table.ids.insert(key, LocationId(next));
    LocationId(next)
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[track_caller]
    fn here() -> Site {
        Location::caller()
    }

    #[test]
    fn an_id_resolves_to_its_own_location_and_repeats_are_the_same_id() {
        let a = here();
        let b = here();
        let (ia, ib) = (LocationId::of(a), LocationId::of(b));
        assert_ne!(ia, ib);
        assert_eq!(LocationId::of(a), ia);
        assert_eq!(ia.resolve().map(Location::line), Some(a.line()));
        assert_eq!(ib.resolve().map(Location::line), Some(b.line()));
        assert_eq!(LocationId::NONE.resolve(), None);
    }

    #[test]
    fn threads_interning_the_same_sites_agree() {
        let sites = [here(), here(), here(), here()];
        let ids: Vec<Vec<LocationId>> = std::thread::scope(|s| {
            let workers: Vec<_> = (0..4)
                .map(|_| s.spawn(|| sites.iter().map(|&l| LocationId::of(l)).collect()))
                .collect();
            workers.into_iter().map(|w| w.join().unwrap()).collect()
        });
        assert!(ids.windows(2).all(|w| w[0] == w[1]));
        let mut distinct = ids[0].clone();
        distinct.dedup();
        assert_eq!(distinct.len(), sites.len());
    }
}
