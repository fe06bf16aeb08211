//! The Xen PV start info (with its inline command line), read from a guest memory
//! image that is the fuzz input.
//!
//! Input: one byte (bit 0: the image ends at the top of the address space instead of
//! lying at LOW_BASE), then the image, with the start info at its first byte.
#![no_main]

use bootinfo::xen_pv::StartInfo;
use chameleon_fuzz::GuestImage;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let image = GuestImage::from_flagged(data);
    match StartInfo::parse(&image, image.base) {
        Ok(info) => {
            // What the kernel relies on after a successful parse.
            let ram_end = info.ram_end();
            assert!(info.nr_pages > 0 && ram_end == info.nr_pages * 4096);
            assert!(info.pt_base < info.bootstrap_end() && info.bootstrap_end() <= ram_end);
            assert!(info.mfn_list.checked_add(info.nr_pages * 8).is_some_and(|end| end <= ram_end));
            if let Some((start, len)) = info.module {
                assert!(start.checked_add(len).is_some_and(|end| end <= ram_end), "{start:#x}+{len:#x}");
            }
            assert_eq!(info.memmap().ram_bytes(), ram_end);
            if let Err(e) = info.cmdline() {
                let _ = e.to_string();
            }
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
