//! The split virtqueue against a device that the fuzz input plays: it completes
//! chains with any used id and length, moves the used index anywhere and scribbles on
//! the ring, while the driver pushes, pops and changes notification settings.
//!
//! Input: queue size - 1, layout flags (bit 0: legacy layout, bit 1: event indices),
//! then operations of one byte each followed by their operands.
#![no_main]

use std::collections::BTreeMap;

use chameleon_fuzz::{Input, SharedRing};
use drivers::dma::DmaRing;
use drivers::virtio::queue::{Layout, Segment, SplitQueue};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let size = u16::from(input.u8()) + 1;
    let flags = input.u8();
    let layout = Layout::new(size, flags & 1 != 0);
    let ring = SharedRing::new(layout.total);
    let device = ring.clone();
    let mut queue = SplitQueue::new(ring, layout, flags & 2 != 0);
    // The model: chains the device holds, head -> descriptors in the chain.
    let mut held: BTreeMap<u16, u16> = BTreeMap::new();
    let mut used_idx = 0u16;
    while !input.is_empty() {
        match input.u8() % 8 {
            0 => {
                let n = usize::from(input.u8() % 4) + 1;
                let chain: Vec<Segment> = (0..n)
                    .map(|i| Segment {
                        addr: u64::from(input.u32()),
                        len: input.u32(),
                        device_writes: i % 2 == 1,
                    })
                    .collect();
                let free = queue.num_free();
                match queue.push(&chain) {
                    Some(head) => {
                        assert!(head < size, "head {head} of a {size}-entry queue");
                        assert!(held.insert(head, n as u16).is_none(), "head {head} handed out twice");
                        assert_eq!(queue.num_free(), free - n as u16);
                    }
                    None => assert!(usize::from(free) < n, "a chain of {n} refused with {free} free"),
                }
            }
            1 => {
                // A completion: mostly of a chain the device holds, else any id.
                let pick = input.u8();
                let id = match held.keys().nth(usize::from(pick) % held.len().max(1)) {
                    Some(&head) if pick & 0x80 == 0 => u32::from(head),
                    _ => input.u32(),
                };
                let elem = layout.used + 4 + 8 * usize::from(used_idx % size);
                device.write_u32(elem, id);
                device.write_u32(elem + 4, input.u32());
                used_idx = used_idx.wrapping_add(1);
                device.write_u16(layout.used + 2, used_idx);
            }
            2 => {
                used_idx = input.u16();
                device.write_u16(layout.used + 2, used_idx);
            }
            3 => {
                // Any byte of the ring: descriptors, flags, avail_event, used entries.
                let at = usize::from(input.u16()) % layout.total;
                device.bytes.borrow_mut()[at] = input.u8();
            }
            4 => {
                let free = queue.num_free();
                match queue.pop_used() {
                    Some((head, _len)) => {
                        let n =
                            held.remove(&head).unwrap_or_else(|| panic!("head {head} returned but not held"));
                        assert_eq!(queue.num_free(), free + n);
                    }
                    None => assert_eq!(queue.num_free(), free),
                }
            }
            5 => {
                let _ = queue.should_notify();
            }
            6 => queue.set_interrupts(input.u8() & 1 == 1),
            _ => {
                let _ = queue.has_used();
            }
        }
        // Every descriptor is free or in a chain the device holds.
        assert_eq!(queue.num_free() + held.values().sum::<u16>(), size);
    }
});
