//! Cycles (TSC ticks) per call of each hot pv op, through its call site (patched or not,
//! as the boot decided) and as the bare native instruction: the kernel's
//! `selftest=pvops-bench`, which `./run.sh bench pvops` runs. The bare instructions live
//! here, with the other privileged instructions, and not in the kernel.

use core::arch::asm;

use crate::native::tsc::rdtsc;
use crate::site;

const ITERATIONS: u64 = 20_000;
const ROUNDS: usize = 7;

/// Median over rounds of the per-iteration ticks of `f`, minus an empty loop's.
fn measure(mut f: impl FnMut()) -> u64 {
    let mut per_round = [0u64; ROUNDS];
    for slot in &mut per_round {
        let start = rdtsc();
        for _ in 0..ITERATIONS {
            f();
        }
        *slot = (rdtsc() - start) / ITERATIONS;
    }
    per_round.sort_unstable();
    per_round[ROUNDS / 2]
}

// The bare native instructions, each as small as the patched site's inline form.
// Interrupts stay masked throughout: `sti` is followed by `cli` in the same asm, the PICs
// are masked and no timer is armed.

fn bare_cli() {
    // SAFETY: masking interrupts cannot break memory safety.
    unsafe { asm!("cli", options(nomem, nostack)) }
}

fn bare_sti_cli() {
    // SAFETY: nothing can be delivered in the one-instruction window (see above).
    unsafe { asm!("sti", "cli", options(nomem, nostack)) }
}

fn bare_pushf_pop() -> u64 {
    let f;
    // SAFETY: reads RFLAGS through the stack.
    unsafe { asm!("pushfq", "pop {}", out(reg) f, options(nomem, preserves_flags)) };
    f
}

fn bare_push_popf(flags: u64) {
    // SAFETY: restores flags that `pushfq` produced, interrupts masked.
    unsafe { asm!("push {}", "popfq", in(reg) flags, options(nomem)) }
}

fn bare_invlpg(addr: u64) {
    // SAFETY: dropping a TLB entry only makes the CPU re-read the page tables.
    unsafe { asm!("invlpg [{}]", in(reg) addr, options(nostack, preserves_flags)) }
}

fn bare_cr3_reload() {
    // SAFETY: reloading CR3 with its own value only drops TLB entries.
    unsafe { asm!("mov {t}, cr3", "mov cr3, {t}", t = out(reg) _, options(nostack, preserves_flags)) }
}

/// Runs every measurement, handing `out` one line per op:
/// `pvbench: NAME site TICKS bare TICKS|-`. `bare` says whether the native instructions
/// can run at all (not in a Xen PV guest's ring 3).
pub fn run(bare: bool, mut out: impl FnMut(core::fmt::Arguments<'_>)) {
    let mut row = |name: &str, site_ticks: u64, bare_ticks: Option<u64>, empty: u64| {
        let site = site_ticks.saturating_sub(empty);
        match bare_ticks {
            Some(bare) => {
                out(format_args!("pvbench: {name:<14} site {site:>6} bare {:>6}", bare.saturating_sub(empty)))
            }
            None => out(format_args!("pvbench: {name:<14} site {site:>6} bare      -")),
        }
    };
    site::irq_disable();
    let empty = measure(|| core::hint::black_box(()));
    let flags = site::irq_save();
    static PROBE: u8 = 0;
    let page = &raw const PROBE as u64;

    row("irq_disable", measure(site::irq_disable), bare.then(|| measure(bare_cli)), empty);
    let site_sti_cli = || {
        site::irq_enable();
        site::irq_disable();
    };
    row("irq_enable", measure(site_sti_cli), bare.then(|| measure(bare_sti_cli)), empty);
    let site_save = || {
        let _ = core::hint::black_box(site::irq_save());
    };
    let bare_save = || {
        core::hint::black_box(bare_pushf_pop());
    };
    row("irq_save", measure(site_save), bare.then(|| measure(bare_save)), empty);
    row(
        "irq_restore",
        measure(|| site::irq_restore(flags)),
        bare.then(|| {
            let raw = bare_pushf_pop();
            measure(|| bare_push_popf(raw))
        }),
        empty,
    );
    row(
        "flush_tlb_one",
        measure(|| site::flush_tlb_one(page)),
        bare.then(|| measure(|| bare_invlpg(page))),
        empty,
    );
    row("flush_tlb", measure(site::flush_tlb), bare.then(|| measure(bare_cr3_reload)), empty);
    let clock = || {
        core::hint::black_box(site::monotonic_ns());
    };
    row("clock_read", measure(clock), None, empty);
    row("apic_eoi", measure(site::apic_eoi), None, empty);
    site::irq_restore(flags);
}
