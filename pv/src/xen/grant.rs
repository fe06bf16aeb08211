//! The grant table's frames: set up once (PV: `GNTTABOP_setup_table` and a remap of our
//! pages onto the frames Xen names; HVM and PVH: `XENMEM_add_to_physmap` of each frame at
//! one of our pages) and handed to the drivers crate, which keeps the entries.

use core::sync::atomic::{AtomicBool, Ordering};

use super::{HYPERVISOR_MEMORY_OP, Refused, check, hypercall3};
use crate::pvclock::HostShared;

const HYPERVISOR_GRANT_TABLE_OP: usize = 20;
const GNTTABOP_SETUP_TABLE: u64 = 2;
const XENMEM_ADD_TO_PHYSMAP: u64 = 7;
const XENMAPSPACE_GRANT_TABLE: u32 = 1;

/// Frames of v1 entries (8 bytes each): 2048 grants, enough for a NIC's two rings of 256
/// buffers and their ring pages, with room for a second.
pub const FRAMES: usize = 4;
const PAGE: usize = 4096;

/// Our pages that become the grant table.
static TABLE: HostShared<{ FRAMES * PAGE }> = HostShared::new();
static READY: AtomicBool = AtomicBool::new(false);
/// The table's address and number of entries, set up on first use.
pub fn table() -> Result<(u64, usize), Refused> {
    if !READY.load(Ordering::Acquire) {
        if super::pv::running() {
            setup_pv()?
        } else {
            setup_hvm()?
        }
        READY.store(true, Ordering::Release);
    }
    Ok((TABLE.addr(), FRAMES * PAGE / 8))
}

fn setup_pv() -> Result<(), Refused> {
    #[repr(C)]
    struct SetupTable {
        dom: u16,
        nr_frames: u32,
        status: i16,
        frame_list: u64,
    }
    let mut frames = [0u64; FRAMES];
    let mut arg = SetupTable {
        dom: super::DOMID_SELF as u16,
        nr_frames: FRAMES as u32,
        status: 0,
        frame_list: frames.as_mut_ptr() as u64,
    };
    // SAFETY: `arg` and the frame list it names live across the call; Xen fills the list.
    let rc = unsafe { hypercall3(HYPERVISOR_GRANT_TABLE_OP, GNTTABOP_SETUP_TABLE, &raw mut arg as u64, 1) };
    check("GNTTABOP_setup_table", rc)?;
    check("GNTTABOP_setup_table (status)", i64::from(arg.status))?;
    for (i, &mfn) in frames.iter().enumerate() {
        // SAFETY: the table's pages are ours and used only through the grant table.
        unsafe { super::pv::map_machine_frame(TABLE.addr() + (i * PAGE) as u64, mfn) }?;
    }
    Ok(())
}

fn setup_hvm() -> Result<(), Refused> {
    #[repr(C)]
    struct AddToPhysmap {
        domid: u16,
        size: u16,
        space: u32,
        idx: u64,
        gpfn: u64,
    }
    for i in 0..FRAMES {
        let args = AddToPhysmap {
            domid: super::DOMID_SELF as u16,
            size: 0,
            space: XENMAPSPACE_GRANT_TABLE,
            idx: i as u64,
            gpfn: (TABLE.addr() + (i * PAGE) as u64) >> 12,
        };
        // SAFETY: `args` lives across the call; the frame it names is a page of ours that
        // nothing else uses, which Xen replaces with the grant frame.
        let rc =
            unsafe { hypercall3(HYPERVISOR_MEMORY_OP, XENMEM_ADD_TO_PHYSMAP, &raw const args as u64, 0) };
        check("XENMEM_add_to_physmap(grant_table)", rc)?;
    }
    Ok(())
}
