//! Which card the stack takes when there are several (the kernel's `net.nic=`): the one
//! at a PCI address, the one with a MAC address, or the first with its link up. The
//! probe offers each card as it starts; cards not taken are stopped, so only one is
//! left running.

use crate::pci::Bdf;

/// What the stack asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// The card at this PCI address (others are not even started).
    Pci(Bdf),
    /// The card with this MAC address.
    Mac([u8; 6]),
    /// The first card with its link up, else the first that started.
    FirstWithLink,
}

/// A card that started, as the choice sees it.
pub trait Candidate {
    fn mac(&self) -> [u8; 6];
    fn link_up(&self) -> bool;
    /// Resets the card and lets it go.
    fn stop(self);
}

/// The choice in progress.
#[derive(Debug)]
pub struct Chooser<C> {
    want: Want,
    /// The first card that started without a link, kept in case no card has one.
    fallback: Option<C>,
}

impl Want {
    /// Whether the card at `bdf` is worth starting.
    pub fn considers(self, bdf: Bdf) -> bool {
        match self {
            Want::Pci(wanted) => wanted == bdf,
            _ => true,
        }
    }

    /// Whether cards outside PCI (virtio-mmio windows) are worth starting.
    pub fn considers_non_pci(self) -> bool {
        !matches!(self, Want::Pci(_))
    }
}

impl<C: Candidate> Chooser<C> {
    pub fn new(want: Want) -> Self {
        Chooser { want, fallback: None }
    }

    /// Offers a started card: `Some` when it is the one (any kept fallback is stopped),
    /// else it is kept as the fallback or stopped.
    pub fn offer(&mut self, card: C) -> Option<C> {
        let take = match self.want {
            // Only the card at the address was started.
            Want::Pci(_) => true,
            Want::Mac(mac) => card.mac() == mac,
            Want::FirstWithLink => card.link_up(),
        };
        if take {
            if let Some(other) = self.fallback.take() {
                other.stop();
            }
            return Some(card);
        }
        match (self.want, &self.fallback) {
            (Want::FirstWithLink, None) => self.fallback = Some(card),
            _ => card.stop(),
        }
        None
    }

    /// After the last card: the first that started when none had its link up.
    pub fn finish(self) -> Option<C> {
        self.fallback
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::cell::RefCell;
    use std::vec::Vec;

    /// A card: its number, MAC (the number in the last byte), link, and the list of
    /// stopped cards it adds itself to.
    struct Card<'a> {
        id: u8,
        link: bool,
        stopped: &'a RefCell<Vec<u8>>,
    }

    impl Candidate for Card<'_> {
        fn mac(&self) -> [u8; 6] {
            [0x52, 0x54, 0, 0, 0, self.id]
        }
        fn link_up(&self) -> bool {
            self.link
        }
        fn stop(self) {
            self.stopped.borrow_mut().push(self.id);
        }
    }

    /// Offers cards with these links in order: the card taken, and those stopped.
    fn choose(want: Want, links: &[bool]) -> (Option<u8>, Vec<u8>) {
        let stopped = RefCell::new(Vec::new());
        let mut chooser = Chooser::new(want);
        let mut taken = None;
        for (i, &link) in links.iter().enumerate() {
            let id = i as u8 + 1;
            if !want.considers(Bdf { bus: 0, device: id + 2, function: 0 }) {
                continue;
            }
            if let Some(card) = chooser.offer(Card { id, link, stopped: &stopped }) {
                taken = Some(card.id);
                break;
            }
        }
        let taken = taken.or_else(|| chooser.finish().map(|c| c.id));
        (taken, stopped.into_inner())
    }

    #[test]
    fn the_first_with_a_link() {
        assert_eq!(choose(Want::FirstWithLink, &[true, true]), (Some(1), [].into()));
        // The first, linkless, is kept until a card with a link turns up, then stopped.
        assert_eq!(choose(Want::FirstWithLink, &[false, false, true]), (Some(3), [2, 1].into()));
        // No link anywhere (a link that never comes up): the first, the others stopped.
        assert_eq!(choose(Want::FirstWithLink, &[false, false, false]), (Some(1), [2, 3].into()));
        assert_eq!(choose(Want::FirstWithLink, &[]), (None, [].into()));
    }

    #[test]
    fn by_mac_whatever_the_link() {
        let mac = |id| Want::Mac([0x52, 0x54, 0, 0, 0, id]);
        assert_eq!(choose(mac(2), &[true, false, true]), (Some(2), [1].into()));
        // A MAC no card has: none, every card stopped (the kernel then asks again by link).
        assert_eq!(choose(mac(9), &[true, true]), (None, [1, 2].into()));
    }

    #[test]
    fn by_pci_address_only_that_card_starts() {
        let at = |device| Want::Pci(Bdf { bus: 0, device, function: 0 });
        // Card 2 sits at 00:04.0; card 1 is never started, so never stopped.
        assert_eq!(choose(at(4), &[true, false]), (Some(2), [].into()));
        assert_eq!(choose(at(9), &[true, true]), (None, [].into()));
        assert!(!at(4).considers_non_pci());
        assert!(Want::FirstWithLink.considers_non_pci() && Want::Mac([0; 6]).considers_non_pci());
    }
}
