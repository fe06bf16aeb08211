//! The Xen PV entry: the one boot path that is Xen's by definition (only Xen enters a
//! kernel in ring 3 with a `start_info`), so it alone may name Xen outside `pv/`. It
//! installs the xen_pv table before anything else, reads the start info, hands Xen's
//! pages to the backend, keeps Xen's page tables, and joins the common boot in
//! [`super::run`].

use bootinfo::xen_pv;
use spin::Once;

use super::{BootMemory, Booted, fail, module_bytes, parse_cmdline, run, start_pv};
use crate::arch::{cpu, entry, idt, paging};
use crate::{console, interrupts, memory};

/// Xen PV's start info, copied (with its inline command line) before the memory it sits
/// in is reused.
static XEN_START_INFO: Once<xen_pv::StartInfo> = Once::new();

/// Called by the Xen PV entry stub on the boot stack: ring 3, events masked, Xen's page
/// tables. Nothing privileged may run here, so the xen_pv table goes in first, then the
/// IDT (which the table turns into Xen's trap table), and only then anything that could
/// fault.
pub(crate) extern "C" fn xen_pv_main(start_info_addr: u64) -> ! {
    // SAFETY: the first thing at the PV entry; nothing else runs.
    unsafe { pv::xen::pv::install_early(interrupts::UPCALL_VECTOR) };
    console::prefer_hypervisor_console();
    idt::init();
    let info = XEN_START_INFO.call_once(|| match xen_pv::StartInfo::parse(&BootMemory, start_info_addr) {
        Ok(info) => info,
        Err(e) => fail("Xen start info", e),
    });
    let handover = pv::xen::pv::Handover {
        shared_info: info.shared_info,
        pt_base: info.pt_base,
        mfn_list: info.mfn_list,
        nr_pages: info.nr_pages,
        dom0: info.is_dom0(),
        console_mfn: info.console_mfn,
        console_evtchn: info.console_evtchn,
        store_mfn: info.store_mfn,
        store_evtchn: info.store_evtchn,
    };
    // SAFETY: boot, after `install_early`; the handover is Xen's start info.
    if let Err(e) = unsafe { pv::xen::pv::start(&handover) } {
        fail("Xen", e);
    }
    let cmdline = match info.cmdline() {
        Ok(cmdline) => cmdline,
        Err(e) => fail("command line", e),
    };
    let parsed = parse_cmdline(cmdline);
    log::info!(
        "chameleon: booting as a Xen PV {} ({} pages), command line: {cmdline:?}",
        if info.is_dom0() { "dom0" } else { "domU" },
        info.nr_pages
    );
    // Patch while Xen's boot mapping still has text writable; the memory set-up below
    // makes it read-only.
    let pv = start_pv(&parsed.settings, pv::Entry::XenPv);
    let guards = entry::stacks().map(|s| s.guard);
    // Xen turns on EFER.NXE itself where the CPU has it.
    let nx = cpu::has_nx();
    let loader = memory::LoaderTables {
        ram_end: info.ram_end(),
        boot_end: info.bootstrap_end(),
        module: info.module.map_or((0, 0), |(start, len)| (start, start.saturating_add(len))),
        memmap: &info.memmap(),
    };
    let free = match memory::init_on_loader_tables(&loader, &paging::image_layout(), &guards, nx) {
        Ok(free) => free,
        Err(e) => fail("memory", e),
    };
    run(Booted {
        protocol: "xen-pv",
        start_info_version: 0,
        cmdline,
        parsed,
        ram_bytes: info.ram_end(),
        free_bytes: free,
        nx,
        modules: info.module.map(|(start, len)| module_bytes(start, len)).into_iter().collect(),
        pv,
    })
}
