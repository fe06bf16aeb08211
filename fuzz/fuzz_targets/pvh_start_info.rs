//! The PVH start info, its memory map and module list, and the command line it points
//! at, read from a guest memory image that is the fuzz input.
//!
//! Input: one byte (bit 0: the image ends at the top of the address space instead of
//! lying at LOW_BASE), then the image, with the start info at its first byte.
#![no_main]

use bootinfo::pvh::{CMDLINE_MAX, StartInfo, read_cmdline};
use chameleon_fuzz::GuestImage;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let image = GuestImage::from_flagged(data);
    match StartInfo::parse(&image, image.base) {
        Ok(info) => {
            // The kernel reserves and hands out these ranges by their ends.
            assert!(info.addr.checked_add(info.struct_len()).is_some());
            assert!(info.memmap_addr.checked_add(info.memmap_len()).is_some());
            for region in info.memmap.regions() {
                assert!(region.start.checked_add(region.len).is_some(), "{region:?}");
            }
            for module in info.modules() {
                assert!(module.start.checked_add(module.len).is_some(), "{module:?}");
            }
            let _ = info.memmap.ram_bytes();
            if let Some(addr) = info.cmdline_addr {
                let mut buf = [0u8; CMDLINE_MAX];
                if let Err(e) = read_cmdline(&image, addr, &mut buf) {
                    let _ = e.to_string();
                }
            }
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
