//! The roster's table: a slab (stable `usize` keys, a free list of vacated entries) stored in
//! chunks that are never moved once allocated.
//!
//! A contiguous slab reallocates as it grows, and each growth copies every slot: for a nursery
//! that spawns its children in a burst that was the largest single cost of a spawn. Here growing
//! allocates one more chunk and copies nothing. Chunks double from 4 entries up to 256, then stay
//! at 256, so a small nursery holds a few small blocks and a large one wastes at most one
//! partly filled chunk.

/// Entries in chunk 0; chunk `c` in `1..GEOMETRIC` covers keys `2^(c+1)..2^(c+2)`.
const FIRST: usize = 4;
/// Chunks of doubling size; the last of them holds `LARGEST` entries.
const GEOMETRIC: usize = 8;
/// Entries in every chunk from `GEOMETRIC` on.
const LARGEST: usize = 1 << GEOMETRIC;
/// The first key of the fixed-size chunks.
const FIXED_START: usize = 2 * LARGEST;

enum Entry<T> {
    /// The next vacant key (or the number of entries ever filled: push a new one).
    Vacant(usize),
    Occupied(T),
}

pub(super) struct Slots<T> {
    /// Each chunk is allocated with its full capacity and only pushed to, never reallocated.
    chunks: Vec<Vec<Entry<T>>>,
    /// Occupied entries.
    len: usize,
    /// Entries ever pushed (occupied or vacant), across all chunks.
    filled: usize,
    /// Head of the free list; `filled` when it is empty.
    next: usize,
}

/// (chunk, index in chunk) of `key`.
#[inline]
fn locate(key: usize) -> (usize, usize) {
    if key < FIRST {
        (0, key)
    } else if key < FIXED_START {
        let log = (usize::BITS - 1 - key.leading_zeros()) as usize;
        (log - 1, key - (1 << log))
    } else {
        let rest = key - FIXED_START;
        (GEOMETRIC + rest / LARGEST, rest % LARGEST)
    }
}

/// Entries chunk `chunk` holds.
fn chunk_len(chunk: usize) -> usize {
    match chunk {
        0 => FIRST,
        c if c < GEOMETRIC => 1 << (c + 1),
        _ => LARGEST,
    }
}

impl<T> Slots<T> {
    pub(super) const fn new() -> Self {
        Slots {
            chunks: Vec::new(),
            len: 0,
            filled: 0,
            next: 0,
        }
    }

    pub(super) fn len(&self) -> usize {
        self.len
    }

    #[inline]
    fn entry_mut(&mut self, key: usize) -> Option<&mut Entry<T>> {
        let (chunk, index) = locate(key);
        self.chunks.get_mut(chunk)?.get_mut(index)
    }

    /// Stores `value` under a free key (the most recently vacated one, else a new one).
    pub(super) fn insert(&mut self, value: T) -> usize {
        let key = self.next;
        self.len += 1;
        if key == self.filled {
            let (chunk, _) = locate(key);
            if chunk == self.chunks.len() {
                self.chunks.push(Vec::with_capacity(chunk_len(chunk)));
            }
            self.chunks[chunk].push(Entry::Occupied(value));
            self.filled += 1;
            self.next = self.filled;
        } else {
            let entry = self.entry_mut(key).expect("free list names a pushed entry");
            let Entry::Vacant(next) = *entry else {
                unreachable!("free list names an occupied entry");
            };
            *entry = Entry::Occupied(value);
            self.next = next;
        }
        key
    }

    #[inline]
    pub(super) fn get(&self, key: usize) -> Option<&T> {
        let (chunk, index) = locate(key);
        match self.chunks.get(chunk)?.get(index)? {
            Entry::Occupied(value) => Some(value),
            Entry::Vacant(_) => None,
        }
    }

    #[inline]
    pub(super) fn get_mut(&mut self, key: usize) -> Option<&mut T> {
        match self.entry_mut(key)? {
            Entry::Occupied(value) => Some(value),
            Entry::Vacant(_) => None,
        }
    }

    /// Vacates `key` (occupied, as the callers checked) and returns its value.
    pub(super) fn remove(&mut self, key: usize) -> Option<T> {
        let next = self.next;
        let entry = self.entry_mut(key)?;
        if let Entry::Vacant(_) = entry {
            return None;
        }
        let Entry::Occupied(value) = std::mem::replace(entry, Entry::Vacant(next)) else {
            unreachable!("checked above");
        };
        self.next = key;
        self.len -= 1;
        Some(value)
    }

    /// The occupied entries, in key order.
    pub(super) fn iter(&self) -> impl Iterator<Item = (usize, &T)> {
        self.chunks
            .iter()
            .flatten()
            .enumerate()
            .filter_map(|(key, entry)| match entry {
                Entry::Occupied(value) => Some((key, value)),
                Entry::Vacant(_) => None,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_map_to_consecutive_chunk_positions() {
        let mut expected = (0, 0);
        for key in 0..FIXED_START + 3 * LARGEST {
            assert_eq!(locate(key), expected, "key {key}");
            expected.1 += 1;
            if expected.1 == chunk_len(expected.0) {
                expected = (expected.0 + 1, 0);
            }
        }
    }

    #[test]
    fn reuses_vacated_keys_and_keeps_values_in_place() {
        let mut slots = Slots::new();
        let keys: Vec<usize> = (0..2_000).map(|i| slots.insert(i)).collect();
        assert_eq!(keys, (0..2_000).collect::<Vec<_>>());
        assert_eq!(slots.remove(7), Some(7));
        assert_eq!(slots.remove(7), None);
        assert_eq!(slots.remove(1_500), Some(1_500));
        assert_eq!(slots.len(), 1_998);
        assert_eq!(slots.get(7), None);
        assert_eq!(slots.insert(10_000), 1_500);
        assert_eq!(slots.insert(10_001), 7);
        assert_eq!(slots.insert(10_002), 2_000);
        *slots.get_mut(3).expect("occupied") += 1;
        assert_eq!(slots.get(3), Some(&4));
        assert_eq!(slots.get(1_500), Some(&10_000));
        assert_eq!(slots.iter().count(), 2_001);
        assert!(slots
            .iter()
            .all(|(key, value)| slots.get(key) == Some(value)));
        assert_eq!(slots.get(1 << 40), None);
    }
}
