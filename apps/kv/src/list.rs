//! A list in blocks of at most [`BLOCK`] elements (as Redis's quicklist is a list of
//! small nodes): it grows and shrinks by pieces of a few KiB, so a list of 100,000
//! elements never asks the heap for one contiguous run of megabytes, and a push the heap
//! cannot hold is refused whole, before anything changes.

use alloc::collections::VecDeque;
use alloc::vec::Vec;

use crate::store::{Bytes, NoRoom};

/// Elements per block: 3 KiB of handles.
const BLOCK: usize = 128;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct List {
    /// Never an empty block.
    blocks: VecDeque<VecDeque<Bytes>>,
    len: usize,
}

impl List {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Pushes `items` at the front (each in turn, as `LPUSH` does) or the back; either all
    /// of them or, when the heap cannot give the room, none.
    pub fn push(&mut self, items: impl ExactSizeIterator<Item = Bytes>, front: bool) -> Result<(), NoRoom> {
        let n = items.len();
        let end = if front { self.blocks.front_mut() } else { self.blocks.back_mut() };
        let room = end.as_ref().map_or(0, |b| BLOCK - b.len());
        if let Some(end) = end {
            end.try_reserve(n.min(room)).map_err(|_| NoRoom)?;
        }
        let rest = n.saturating_sub(room);
        let new_blocks = rest.div_ceil(BLOCK);
        self.blocks.try_reserve(new_blocks).map_err(|_| NoRoom)?;
        // The new blocks, in the order they are used: full ones, then the last, sized to
        // what it takes (it grows by later pushes).
        let mut spare: Vec<VecDeque<Bytes>> = Vec::new();
        spare.try_reserve_exact(new_blocks).map_err(|_| NoRoom)?;
        for k in 0..new_blocks {
            let size = if k + 1 == new_blocks { rest - k * BLOCK } else { BLOCK };
            let mut block = VecDeque::new();
            block.try_reserve_exact(size).map_err(|_| NoRoom)?;
            spare.push(block);
        }
        spare.reverse();
        for item in items {
            let full =
                if front { self.blocks.front() } else { self.blocks.back() }.is_none_or(|b| b.len() == BLOCK);
            if full {
                let block = spare.pop().ok_or(NoRoom)?;
                if front {
                    self.blocks.push_front(block);
                } else {
                    self.blocks.push_back(block);
                }
            }
            let end = if front { self.blocks.front_mut() } else { self.blocks.back_mut() };
            let Some(end) = end else { return Err(NoRoom) };
            if front {
                end.push_front(item);
            } else {
                end.push_back(item);
            }
            self.len += 1;
        }
        Ok(())
    }

    pub fn pop(&mut self, front: bool) -> Option<Bytes> {
        let end = if front { self.blocks.front_mut() } else { self.blocks.back_mut() }?;
        let item = if front { end.pop_front() } else { end.pop_back() }?;
        if end.is_empty() {
            if front {
                self.blocks.pop_front();
            } else {
                self.blocks.pop_back();
            }
        }
        self.len -= 1;
        Some(item)
    }

    pub fn get(&self, mut i: usize) -> Option<&Bytes> {
        for block in &self.blocks {
            if i < block.len() {
                return block.get(i);
            }
            i -= block.len();
        }
        None
    }

    /// The elements from index `from` on, whole blocks skipped.
    pub fn iter_from(&self, mut from: usize) -> impl Iterator<Item = &Bytes> {
        let mut first = 0;
        while first < self.blocks.len() && from >= self.blocks[first].len() {
            from -= self.blocks[first].len();
            first += 1;
        }
        self.blocks.iter().skip(first).flatten().skip(from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(i: usize) -> Bytes {
        Bytes::from(i.to_string().into_bytes())
    }

    /// The list against a plain `VecDeque` through pushes and pops at both ends.
    #[test]
    fn behaves_as_a_deque() {
        let mut list = List::default();
        let mut model: VecDeque<Bytes> = VecDeque::new();
        let mut next = 0;
        for round in 0..60 {
            let n = (round * 37) % 300;
            let front = round % 3 != 0;
            let items: Vec<Bytes> = (next..next + n).map(b).collect();
            next += n;
            list.push(items.clone().into_iter(), front).unwrap();
            for item in items {
                if front {
                    model.push_front(item);
                } else {
                    model.push_back(item);
                }
            }
            for _ in 0..(round * 11) % 250 {
                let front = round % 2 == 0;
                assert_eq!(list.pop(front), if front { model.pop_front() } else { model.pop_back() });
            }
            assert_eq!(list.len(), model.len());
            assert!(list.blocks.iter().all(|b| !b.is_empty() && b.len() <= BLOCK));
            for from in [0, 1, BLOCK - 1, BLOCK, 2 * BLOCK + 5, model.len().saturating_sub(1), model.len()] {
                assert!(list.iter_from(from).eq(model.iter().skip(from)), "from {from}");
                assert_eq!(list.get(from), model.get(from));
            }
        }
    }

    #[test]
    fn a_long_list_grows_in_small_pieces() {
        let mut list = List::default();
        for i in 0..100_000 {
            list.push(core::iter::once(b(i)), true).unwrap();
        }
        assert_eq!(list.len(), 100_000);
        assert!(list.blocks.iter().all(|b| b.capacity() <= 2 * BLOCK));
        assert_eq!(list.get(0), Some(&b(99_999)));
        while list.pop(false).is_some() {}
        assert!(list.is_empty() && list.blocks.is_empty());
    }
}
