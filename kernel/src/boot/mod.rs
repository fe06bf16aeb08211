//! The boot sequence, from an entry stub to the app. Each entry (PVH and multiboot2
//! here, Xen PV in [`xen_pv`]) does what only it can (reading its start info, setting up
//! traps and memory its way) and then all join in [`run`]; PVH and multiboot2, both
//! ring 0 on the boot page tables, share [`boot_ring0`] before that.

pub(crate) mod xen_pv;

use alloc::string::String;

use bootinfo::cmdline::{self, Settings};
use bootinfo::pvh::{self, CMDLINE_MAX, StartInfo};
use bootinfo::{PhysMemory, Unreadable};
use spin::Once;

use crate::app::{self, BootFacts};
use crate::arch::{cpu, entry, gdt, idt, paging};
use crate::exit::{ExitCode, exit};
use crate::{console, interrupts, logger, memory, selftest, time};

/// Reads guest-physical memory through the boot page tables, which identity-map the
/// first 4 GiB.
struct BootMemory;

const BOOT_MAPPED: u64 = 4 << 30;

impl PhysMemory for BootMemory {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), Unreadable> {
        let unreadable = Unreadable { addr, len: buf.len() };
        let end = addr.checked_add(buf.len() as u64).ok_or(unreadable)?;
        if end > BOOT_MAPPED {
            return Err(unreadable);
        }
        // SAFETY: the range lies in the identity-mapped first 4 GiB; reads of RAM or
        // firmware tables have no side effects, and only addresses the loader handed
        // over are read.
        unsafe { core::ptr::copy_nonoverlapping(addr as *const u8, buf.as_mut_ptr(), buf.len()) };
        Ok(())
    }
}

/// The command line, copied out of loader memory before that memory is reused.
static CMDLINE: Once<([u8; CMDLINE_MAX], usize)> = Once::new();

fn fail(what: &str, why: impl core::fmt::Display) -> ! {
    crate::println!("chameleon: boot failed: {what}: {why}");
    exit(ExitCode::BootFailed)
}

/// A boot module's bytes; the caller checked that the range is RAM.
fn module_bytes(start: u64, len: u64) -> &'static [u8] {
    // SAFETY: the module lies in RAM (checked by the caller), which is identity-mapped,
    // and its range was reserved before the frame allocator started, so no allocation
    // ever overlaps it; nothing writes to it.
    unsafe { core::slice::from_raw_parts(start as *const u8, len as usize) }
}

/// The command line's settings, with the network configuration they name.
struct Parsed<'a> {
    settings: Settings<'a>,
    warnings: usize,
    net: crate::net::NetConfig,
}

/// Parses the command line, warning about what it ignores, and starts the logger.
fn parse_cmdline(cmdline: &str) -> Parsed<'_> {
    let mut warnings = 0;
    let settings: Settings<'_> = cmdline::parse(cmdline, &pv::detect::NAMES, |w| {
        crate::println!("chameleon: warning: command line: {w}");
        warnings += 1;
    });
    logger::init(settings.log);
    let mut net = crate::net::NetConfig {
        ip: settings.ip,
        gateway: settings.gateway,
        mmio: [None; 8],
        max_conns: settings.max_conns,
        nic: settings.nic,
        irq: settings.net_irq,
    };
    for value in settings.virtio_mmio.iter().flatten() {
        match drivers::virtio::mmio::parse_cmdline_device(value) {
            Ok(dev) => add_mmio_device(&mut net, dev),
            Err(why) => {
                crate::println!(
                    "chameleon: warning: command line: `virtio_mmio.device={value}` ignored: {why}"
                )
            }
        }
    }
    Parsed { settings, warnings, net }
}

fn add_mmio_device(net: &mut crate::net::NetConfig, dev: drivers::virtio::mmio::MmioDevice) {
    if let Some(slot) = net.mmio.iter_mut().find(|s| s.is_none()) {
        *slot = Some(dev);
    }
}

/// What an entry hands to [`run`].
struct Booted<'a> {
    protocol: &'static str,
    start_info_version: u32,
    cmdline: &'a str,
    parsed: Parsed<'a>,
    ram_bytes: u64,
    free_bytes: u64,
    nx: bool,
    modules: alloc::vec::Vec<&'static [u8]>,
    pv: pv::Report,
}

/// Called by the PVH entry stub on the boot stack, with interrupts off.
pub(crate) extern "C" fn pvh_main(start_info_addr: u64) -> ! {
    console::init_serial();
    gdt::init();
    idt::init();

    let mut info = match StartInfo::parse(&BootMemory, start_info_addr) {
        Ok(info) => info,
        Err(e) => fail("PVH start info", e),
    };
    if info.memmap.is_empty() {
        hypervisor_memory_map(&mut info.memmap);
    }
    boot_ring0(Handover {
        protocol: "pvh",
        version: info.version,
        cmdline_addr: info.cmdline_addr,
        rsdp_addr: info.rsdp_addr,
        memmap: &info.memmap,
        modules: info.modules(),
        loader_ranges: [
            (info.addr, info.addr + info.struct_len()),
            (info.memmap_addr, info.memmap_addr + info.memmap_len()),
        ],
        loader: None,
    })
}

/// Called by the multiboot2 entry stub (GRUB's `multiboot2`) on the boot stack, with
/// interrupts off; `eax` is what the loader left in EAX.
pub(crate) extern "C" fn multiboot2_main(info_addr: u64, eax: u64) -> ! {
    use bootinfo::multiboot2::{BootInfo, Firmware, MemmapSource};
    console::init_serial();
    gdt::init();
    idt::init();

    let info = match BootInfo::parse(&BootMemory, eax as u32, info_addr) {
        Ok(info) => info,
        Err(e) => fail("multiboot2 boot information", e),
    };
    let firmware = match info.firmware {
        Firmware::Bios => "BIOS",
        // We ask for no EFI tag in the header, so GRUB exits boot services itself.
        Firmware::Uefi { boot_services_exited: true } => "UEFI, boot services exited by the loader",
        Firmware::Uefi { boot_services_exited: false } => fail(
            "multiboot2 boot information",
            "the loader left UEFI boot services running, which this kernel never asks for",
        ),
    };
    let mut name = [0; 64];
    let loader = info.loader_name_addr.map_or("an unnamed loader", |addr| c_string(addr, &mut name));
    let memmap_source = match info.memmap_source {
        MemmapSource::E820 => "e820",
        MemmapSource::Efi => "EFI",
    };
    boot_ring0(Handover {
        protocol: "multiboot2",
        version: 2,
        cmdline_addr: info.cmdline_addr,
        rsdp_addr: info.rsdp_addr,
        memmap: &info.memmap,
        modules: info.modules(),
        loader_ranges: [(info.addr, info.addr + u64::from(info.total_size)), (0, 0)],
        loader: Some(Loader { name: loader, firmware, memmap_source }),
    })
}

/// The NUL-terminated string at `addr` (already checked to end inside its tag), cut to
/// `buf`'s length and to its valid UTF-8 prefix.
fn c_string(addr: u64, buf: &mut [u8]) -> &str {
    let mut len = 0;
    while len < buf.len() {
        match BootMemory.read_u8(addr + len as u64) {
            Ok(0) | Err(_) => break,
            Ok(b) => buf[len] = b,
        }
        len += 1;
    }
    match core::str::from_utf8(&buf[..len]) {
        Ok(s) => s,
        Err(e) => core::str::from_utf8(&buf[..e.valid_up_to()]).unwrap_or_default(),
    }
}

/// Fills an empty memory map from the hypervisor, or stops the boot.
fn hypervisor_memory_map(memmap: &mut bootinfo::memmap::MemoryMap) {
    // No map in the start info: only a hypervisor can say where RAM is.
    let mut overflow = false;
    // The same rule as for the start info's map: an entry that wraps stops the boot.
    let mut wrapped = None;
    let Some(memory_map) = pv::detect::early(&pv::Machine).memory_map else {
        fail("memory", "the start info carries no memory map and no hypervisor offers one");
    };
    let found = memory_map(&mut |start, len, kind| {
        if start.checked_add(len).is_none() {
            wrapped.get_or_insert((start, len));
            return;
        }
        let region =
            bootinfo::memmap::Region { start, len, kind: bootinfo::memmap::RegionKind::from_raw(kind) };
        overflow |= memmap.push(region).is_err();
    });
    if let Some((start, len)) = wrapped {
        fail(
            "memory",
            format_args!(
                "the hypervisor's memory map has an entry (start {start:#x}, length {len:#x}) that runs past the end of the address space"
            ),
        );
    }
    match found {
        Ok(n) if n > 0 && !overflow => {}
        Ok(_) => fail("memory", "the start info has no memory map and the hypervisor's is empty or too long"),
        Err(why) => fail("memory", format_args!("the start info carries no memory map ({why})")),
    }
}

/// What a ring-0 entry (PVH, multiboot2) read from its loader.
struct Handover<'a> {
    protocol: &'static str,
    version: u32,
    cmdline_addr: Option<u64>,
    rsdp_addr: Option<u64>,
    memmap: &'a bootinfo::memmap::MemoryMap,
    modules: &'a [pvh::Module],
    /// The loader's own structures, kept out of the allocator.
    loader_ranges: [(u64, u64); 2],
    /// What a multiboot2 loader said about itself and the firmware.
    loader: Option<Loader<'a>>,
}

struct Loader<'a> {
    name: &'a str,
    firmware: &'static str,
    memmap_source: &'static str,
}

/// The rest of a ring-0 entry, on the boot page tables: command line, ACPI facts,
/// frames, the kernel's page tables, pv-ops; then [`run`].
fn boot_ring0(h: Handover<'_>) -> ! {
    let cmdline = match h.cmdline_addr {
        None => "",
        Some(addr) => {
            let (buf, len) = CMDLINE.call_once(|| {
                let mut buf = [0; CMDLINE_MAX];
                let len = match pvh::read_cmdline(&BootMemory, addr, &mut buf) {
                    Ok(s) => s.len(),
                    Err(e) => fail("command line", e),
                };
                (buf, len)
            });
            // Checked to be UTF-8 by `read_cmdline`.
            core::str::from_utf8(&buf[..*len]).unwrap_or_default()
        }
    };
    let mut parsed = parse_cmdline(cmdline);
    let (name, what) =
        if h.protocol == "pvh" { ("PVH", "start info") } else { (h.protocol, "boot information") };
    log::info!("chameleon: booting via {name} ({what} v{}), command line: {cmdline:?}", h.version);
    if let Some(l) = &h.loader {
        log::info!(
            "boot: loaded by {} on {}; memory map from the {} tag",
            l.name,
            l.firmware,
            l.memmap_source
        );
    }

    // Power-off facts must be read before the allocator can reuse the RAM the ACPI
    // tables sit in.
    if let Some(rsdp) = h.rsdp_addr {
        match bootinfo::acpi::find_power_off(&BootMemory, rsdp) {
            Ok(how) => crate::exit::set_power_off(how),
            Err(e) => log::warn!("ACPI: {e}; power-off unavailable"),
        }
        // The TSC's calibration falls back on it where there is no PIT (UEFI machines
        // need not have one); claimed for good so no driver takes its port.
        if let Ok(Some(timer)) = bootinfo::acpi::find_pm_timer(&BootMemory, rsdp) {
            use crate::arch::claims::{self, Space};
            if claims::claim(Space::Port, u64::from(timer.port), 4).is_ok() {
                pv::native::tsc::set_pm_timer(timer.port, timer.wide);
            }
        }
        if let Ok(Some(ecam)) = bootinfo::acpi::find_ecam(&BootMemory, rsdp) {
            crate::pci::set_ecam(ecam);
        }
        if let Ok(Some(madt)) = bootinfo::acpi::find_madt(&BootMemory, rsdp) {
            interrupts::set_madt(madt);
        }
        if let Ok((devices, count)) = bootinfo::acpi::find_virtio_mmio(&BootMemory, rsdp) {
            for dev in &devices[..count] {
                let dev = drivers::virtio::mmio::MmioDevice { base: dev.base, size: dev.size, irq: dev.gsi };
                add_mmio_device(&mut parsed.net, dev);
            }
        }
    }

    let image = paging::image_layout();
    const FIXED: usize = 4;
    let mut reserved = [(0, 0); FIXED + pvh::MODULES_MAX];
    reserved[..FIXED].copy_from_slice(&[
        (0, 1 << 20), // page 0, real-mode and firmware areas
        (image.start, image.end),
        h.loader_ranges[0],
        h.loader_ranges[1],
    ]);
    for (slot, m) in reserved[FIXED..].iter_mut().zip(h.modules) {
        *slot = (m.start, m.start.saturating_add(m.len));
    }
    let free = match memory::init_frames(h.memmap, &reserved) {
        Ok(free) => free,
        Err(e) => fail("memory", e),
    };
    log::debug!("memory: {} KiB free in {} ranges", free / 1024, memory::FRAMES.lock().ranges().len());
    let nx = cpu::enable_nx();
    let guards = entry::stacks().map(|s| s.guard);
    if let Err(e) = memory::init_paging(h.memmap, &image, &guards, nx) {
        fail("memory", e);
    }
    log::debug!("paging: kernel page tables live, NX {}", if nx { "on" } else { "unavailable" });

    // Multiboot2 enters like PVH: ring 0, the hypervisor found by CPUID.
    let pv = start_pv(&parsed.settings, pv::Entry::Pvh);
    let modules = h
        .modules
        .iter()
        .filter(|m| {
            let in_ram =
                h.memmap.ram().any(|r| r.start <= m.start && m.start.saturating_add(m.len) <= r.end());
            if !in_ram {
                log::warn!("boot module at {:#x} ({} bytes) is not in RAM; ignored", m.start, m.len);
            }
            in_ram
        })
        .map(|m| module_bytes(m.start, m.len))
        .collect();
    run(Booted {
        protocol: h.protocol,
        start_info_version: h.version,
        cmdline,
        parsed,
        ram_bytes: h.memmap.ram_bytes(),
        free_bytes: free,
        nx,
        modules,
        pv,
    })
}

/// Detects the hypervisor and starts its pv-ops backend (or the one `pv=` names).
fn start_pv(settings: &Settings<'_>, entry: pv::Entry) -> pv::Report {
    let choice = settings.pv.and_then(pv::detect::by_name).map_or(pv::Choice::Auto, pv::Choice::Force);
    let map_frames = |addr, len| memory::map_shared(addr, len).is_ok();
    // SAFETY: boot: one CPU, interrupts off, nothing else running.
    match unsafe { pv::init(choice, settings.pv_patch, entry, interrupts::UPCALL_VECTOR, &map_frames) } {
        Ok(report) => report,
        Err(e) => fail("pv", e),
    }
}

/// The rest of the boot, the same for every entry: clock, console, interrupts, then the
/// self-test or the app.
fn run(b: Booted<'_>) -> ! {
    let pv = b.pv;
    crate::net::configure(b.parsed.net);
    time::start();
    pv::bus::set_clock(time::since_boot_ns, |deadline| time::halt_until_ns(deadline, || false));
    console::prefer_hypervisor_console();
    if let Some(hv) = pv.detection.cpuid {
        log::debug!("pv: CPUID leaves at {:#x}..={:#x}, features {:x?}", hv.base, hv.max_leaf, hv.features);
    }
    let steal = (pv::table::ops().time.steal_ns)();
    if steal > 0 {
        log::debug!("pv: steal time so far {steal} ns");
    }
    if let Some(why) = pv.detection.fallback.or(pv.backend_error) {
        log::warn!("pv: {why}; using the native backend");
    }
    if let Some(e) = pv.backend_warning {
        log::warn!("pv: {e}; the native clock or timer serves instead");
    }
    log::info!(
        "pv: hypervisor={} backend={} patched={}/{} sites",
        pv.detection.hypervisor,
        pv.backend().name,
        pv.patch.patched,
        pv.patch.total
    );
    let timer = if !pv.backend().local_apic {
        // No APIC or PIC to program: the hypervisor delivers events, the timer included.
        String::new()
    } else {
        use pv::native::apic::{self, TimerMode};
        let (apic_mode, timer_mode) = interrupts::init();
        match (pv.timer, timer_mode) {
            (Some(_), _) => alloc::format!(", APIC {apic_mode:?}"),
            (None, TimerMode::CountDown) => alloc::format!(
                ", APIC {apic_mode:?}, timer {timer_mode:?} at {} kHz",
                apic::countdown_hz() / 1000
            ),
            (None, TimerMode::TscDeadline) => {
                alloc::format!(", APIC {apic_mode:?}, timer {timer_mode:?}")
            }
        }
    };
    log::info!(
        "time: clock from {}, TSC {} kHz{timer}{}{}",
        pv.tsc_source.name(),
        time::tsc_khz(),
        pv.timer.map(|t| alloc::format!(", timer {t}")).unwrap_or_default(),
        pv.wall_clock.map(|w| alloc::format!(", wall clock from {w}")).unwrap_or_default()
    );

    let mut brand = [0; 48];
    let facts = BootFacts {
        protocol: b.protocol,
        start_info_version: b.start_info_version,
        ram_bytes: b.ram_bytes,
        free_bytes: b.free_bytes,
        cpu_brand: String::from(cpu::brand(&mut brand)),
        hypervisor: pv.detection.hypervisor,
        pv_backend: pv.backend().name,
        tsc_khz: time::tsc_khz(),
        tsc_source: pv.tsc_source.name(),
        nx: b.nx,
        exit_method: crate::exit::method(),
        modules: b.modules,
    };
    log::info!(
        "chameleon: {} MiB RAM, {} MiB free, cpu {:?}, NX {}, exit via {}",
        facts.ram_bytes >> 20,
        facts.free_bytes >> 20,
        facts.cpu_brand,
        if facts.nx { "on" } else { "off" },
        facts.exit_method
    );
    let settings = &b.parsed.settings;
    if b.parsed.warnings > 0 {
        log::warn!("{} command-line setting(s) ignored", b.parsed.warnings);
    }

    // Poll before halting only where that spins on a CPU of our own, or when asked to.
    let (halt_poll_us, why) = match settings.halt_poll_us {
        Some(us) => (us, "haltpoll="),
        None if pv.dedicated_cpu => (cmdline::DEFAULT_HALT_POLL_US, "the vCPU has a CPU of its own"),
        None => (0, "the vCPU may share its CPU"),
    };
    crate::executor::set_halt_poll_us(halt_poll_us);
    match halt_poll_us {
        0 => log::info!("idle: halts at once ({why})"),
        us => log::info!("idle: polls up to {us} us before halting ({why})"),
    }
    if let Some(name) = settings.selftest {
        exit(selftest::run(name, &facts, pv.backend()));
    }
    let args = app::Args { cmdline: b.cmdline, app_args: settings.app_args, facts: &facts };
    match app::run(&args) {
        Ok(()) => exit(ExitCode::Success),
        Err(e) => {
            crate::println!("chameleon: app failed: {e}");
            exit(ExitCode::AppFailed)
        }
    }
}
