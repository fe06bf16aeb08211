//! The multiboot2 boot information block (tags, memory maps, RSDP copies, modules) and
//! the command line it holds, read from a guest memory image that is the fuzz input.
//!
//! Input: one byte (bit 0: the image ends at the top of the address space instead of
//! lying at LOW_BASE), then the image, with the block at its first byte.
#![no_main]

use bootinfo::PhysMemory;
use bootinfo::multiboot2::{BOOTLOADER_MAGIC, BootInfo};
use bootinfo::pvh::{CMDLINE_MAX, read_cmdline};
use chameleon_fuzz::GuestImage;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let image = GuestImage::from_flagged(data);
    match BootInfo::parse(&image, BOOTLOADER_MAGIC, image.base) {
        Ok(info) => {
            // The kernel reserves the block by its end, and hands out RAM by the map.
            let end = info.addr.checked_add(u64::from(info.total_size)).expect("block end");
            for region in info.memmap.regions() {
                assert!(region.start.checked_add(region.len).is_some(), "{region:?}");
            }
            for module in info.modules() {
                assert!(module.start.checked_add(module.len).is_some(), "{module:?}");
            }
            // Every address handed on lies inside the block, where the parser checked it.
            let inside = |a: u64| (info.addr..end).contains(&a);
            if let Some(rsdp) = info.rsdp_addr {
                assert!(inside(rsdp));
                let mut sig = [0u8; 8];
                image.read(rsdp, &mut sig).expect("the RSDP copy is readable");
                assert_eq!(&sig, b"RSD PTR ");
            }
            if let Some(addr) = info.cmdline_addr {
                assert!(inside(addr));
                let mut buf = [0u8; CMDLINE_MAX];
                match read_cmdline(&image, addr, &mut buf) {
                    // The NUL was found inside the tag, so the copy ends there too.
                    Ok(s) => assert!(inside(addr + s.len() as u64)),
                    Err(e) => {
                        let text = e.to_string();
                        assert!(text.contains("UTF-8"), "only the encoding can still be wrong: {text}");
                    }
                }
            }
            if let Some(addr) = info.loader_name_addr {
                assert!(inside(addr));
            }
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
