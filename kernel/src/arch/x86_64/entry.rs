//! The three ways into the image, two announced by an ELF note in PT_NOTE, one by a
//! multiboot2 header at the start of the text:
//!
//! - PVH (XEN_ELFNOTE_PHYS32_ENTRY): 32-bit protected mode, paging off, EBX =
//!   `hvm_start_info` (physical). The stub builds throw-away page tables that
//!   identity-map the first 4 GiB with 2 MiB pages (enough for the image, the start info
//!   and everything the loader put beside it), enters long mode and calls
//!   [`crate::boot::pvh_main`], which replaces those tables with the real ones.
//! - Multiboot2 (GRUB's `multiboot2`): the same machine state as PVH, with EAX = the
//!   loader's magic and EBX = the boot information. The header's entry-address tag
//!   points at its own 3-instruction stub, which joins PVH's path to long mode with a
//!   flag in EBP saying which Rust entry to call ([`crate::boot::multiboot2_main`]).
//!   The header asks for no EFI tag, so under UEFI GRUB exits boot services first.
//! - Xen PV (XEN_ELFNOTE_ENTRY and the notes a PV domain builder requires): 64-bit, ring
//!   3, paging on with Xen's tables mapping the image at VIRT_BASE 0 + its physical
//!   address (so at the same addresses as under PVH), RSI = `start_info`. The stub
//!   switches to the boot stack and calls [`crate::boot::xen_pv::xen_pv_main`].

/// Bytes of the boot stack; apps run on it.
pub const BOOT_STACK_SIZE: usize = 256 * 1024;
/// Bytes of each interrupt stack (double fault, NMI, machine check).
pub const IST_STACK_SIZE: usize = 16 * 1024;

core::arch::global_asm!(
    r#"
    .section .note.Xen, "a", @note
    .balign 4
    .long 4                 /* namesz: "Xen\0" */
    .long 8                 /* descsz: 8 bytes in an ELF64, upper half zero */
    .long 18                /* XEN_ELFNOTE_PHYS32_ENTRY */
    .asciz "Xen"
    .balign 4
    .quad pvh_start32

    /* The Xen PV notes: a descriptor between labels 1 and 2 of each note. */
    .macro XEN_NOTE type
    .balign 4
    .long 4
    .long 2f - 1f
    .long \type
    .asciz "Xen"
    .balign 4
1:
    .endm
    XEN_NOTE 6                  /* GUEST_OS */
    .asciz "Chameleon"
2:  XEN_NOTE 5                  /* XEN_VERSION: the PV ABI generation */
    .asciz "xen-3.0"
2:  XEN_NOTE 8                  /* LOADER */
    .asciz "generic"
2:  XEN_NOTE 3                  /* VIRT_BASE: virtual == physical */
    .quad 0
2:  XEN_NOTE 4                  /* PADDR_OFFSET */
    .quad 0
2:  XEN_NOTE 1                  /* ENTRY */
    .quad xen_pv_start
2:  XEN_NOTE 2                  /* HYPERCALL_PAGE: Xen fills it at load */
    .quad xen_hypercall_page
2:  XEN_NOTE 10                 /* FEATURES: none required; fit to be dom0 */
    .asciz "dom0"
2:  XEN_NOTE 9                  /* PAE_MODE */
    .asciz "yes"
2:  .balign 4

    /* Multiboot2 header: 8-byte aligned in the first 32 KiB of the file (the linker
       script puts it first in .text). */
    .section .multiboot2, "a"
    .balign 8
mb2_header:
    .long 0xe85250d6                    /* magic */
    .long 0                             /* architecture: i386 protected mode */
    .long mb2_header_end - mb2_header
    .long 0x100000000 - (0xe85250d6 + (mb2_header_end - mb2_header))
    .balign 8
    .short 3, 0                         /* entry address */
    .long 12
    .long mb2_start32
    .balign 8
    .short 6, 0                         /* modules page-aligned */
    .long 8
    .short 0, 0                         /* end */
    .long 8
mb2_header_end:

    .section .text.boot, "ax"
    .code32
    .global pvh_start32, mb2_start32
mb2_start32:
    mov %eax, %esi                      /* the loader's magic, checked by multiboot2_main */
    mov $1, %ebp
    jmp 0f
pvh_start32:
    xor %ebp, %ebp
0:  cli
    cld
    mov %ebx, %edi                      /* keep the start info for the Rust entry */

    /* Long mode needs CPUID leaf 0x80000001 EDX bit 29. */
    mov $0x80000000, %eax
    cpuid
    cmp $0x80000001, %eax
    jb no_long_mode
    mov $0x80000001, %eax
    cpuid
    bt $29, %edx
    jnc no_long_mode

    /* PML4[0] -> PDPT; PDPT[0..4] -> four PDs; PD entries: 2 MiB pages over 4 GiB. */
    mov $boot_pdpt + 0x3, %eax
    mov %eax, boot_pml4
    mov $boot_pd + 0x3, %eax
    mov $boot_pdpt, %edx
    mov $4, %ecx
1:  mov %eax, (%edx)
    add $4096, %eax
    add $8, %edx
    loop 1b
    mov $0x83, %eax                     /* present, writable, 2 MiB */
    mov $boot_pd, %edx
    mov $2048, %ecx
2:  mov %eax, (%edx)
    movl $0, 4(%edx)
    add $0x200000, %eax
    add $8, %edx
    loop 2b

    mov %cr4, %eax
    or $(1 << 5), %eax                  /* PAE */
    mov %eax, %cr4
    mov $boot_pml4, %eax
    mov %eax, %cr3
    mov $0xc0000080, %ecx               /* EFER */
    rdmsr
    or $(1 << 8), %eax                  /* LME */
    wrmsr
    mov %cr0, %eax
    or $0x80010001, %eax                /* PG, WP (ring 0 honours read-only pages), PE */
    mov %eax, %cr0

    lgdt boot_gdt_ptr
    ljmp $0x08, $long_mode_entry

no_long_mode:
    mov $no_long_mode_msg, %esi
3:  lodsb
    test %al, %al
    jz 4f
    mov $0x3f8, %dx
    out %al, %dx
    jmp 3b
4:  mov $0x501, %dx                     /* isa-debug-exit, if present: code 2 */
    mov $2, %eax
    out %eax, %dx
5:  hlt
    jmp 5b

    .code64
long_mode_entry:
    mov $0x10, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    xor %eax, %eax
    mov %ax, %fs
    mov %ax, %gs
    lea __boot_stack_top(%rip), %rsp
    mov %edi, %edi                      /* zero-extend the start info address */
    mov %esi, %esi                      /* and multiboot2's EAX */
    test %ebp, %ebp                     /* which entry; then ends the frame-pointer chain */
    jnz 1f
    xor %ebp, %ebp
    call {pvh_main}
    ud2
1:  xor %ebp, %ebp
    call {multiboot2_main}
    ud2

    .global xen_pv_start
xen_pv_start:
    cld
    lea __boot_stack_top(%rip), %rsp
    xor %ebp, %ebp
    mov %rsi, %rdi                      /* start_info (virtual) */
    call {xen_pv_main}
    ud2

    .section .rodata.boot, "a"
no_long_mode_msg:
    .asciz "chameleon: this CPU has no long mode (x86_64); cannot boot\n"
    .balign 8
boot_gdt:
    .quad 0
    .quad 0x00af9b000000ffff            /* 0x08: 64-bit code, accessed */
    .quad 0x00cf93000000ffff            /* 0x10: data, accessed */
boot_gdt_ptr:
    .word boot_gdt_ptr - boot_gdt - 1
    .long boot_gdt

    .section .bss.boot_page_tables, "aw", @nobits
    .balign 4096
boot_pml4: .skip 4096
boot_pdpt: .skip 4096
boot_pd:   .skip 4 * 4096

    /* Every stack has an unmapped guard page below it (see paging). */
    .macro STACK name, size
    .section .bss.stack.\name, "aw", @nobits
    .balign 4096
    .global __\name\()_guard, __\name\()_top
__\name\()_guard: .skip 4096
    .skip \size
__\name\()_top:
    .endm
    STACK boot_stack, {boot_stack}
    STACK ist_double_fault, {ist}
    STACK ist_nmi, {ist}
    STACK ist_machine_check, {ist}
    "#,
    pvh_main = sym crate::boot::pvh_main,
    multiboot2_main = sym crate::boot::multiboot2_main,
    xen_pv_main = sym crate::boot::xen_pv::xen_pv_main,
    boot_stack = const BOOT_STACK_SIZE,
    ist = const IST_STACK_SIZE,
    options(att_syntax)
);

/// A stack: its guard page and the usable range above it.
#[derive(Debug, Clone, Copy)]
pub struct StackArea {
    pub name: &'static str,
    pub guard: u64,
    pub top: u64,
}

impl StackArea {
    pub fn bottom(&self) -> u64 {
        self.guard + 4096
    }
    pub fn contains(&self, addr: u64) -> bool {
        (self.bottom()..self.top).contains(&addr)
    }
}

unsafe extern "C" {
    static __boot_stack_guard: u8;
    static __boot_stack_top: u8;
    static __ist_double_fault_guard: u8;
    static __ist_double_fault_top: u8;
    static __ist_nmi_guard: u8;
    static __ist_nmi_top: u8;
    static __ist_machine_check_guard: u8;
    static __ist_machine_check_top: u8;
}

/// The kernel's stacks (boot first, then the IST stacks in TSS order).
pub fn stacks() -> [StackArea; 4] {
    let at = |p: *const u8| p as u64;
    [
        StackArea {
            name: "boot",
            guard: at(&raw const __boot_stack_guard),
            top: at(&raw const __boot_stack_top),
        },
        StackArea {
            name: "double-fault",
            guard: at(&raw const __ist_double_fault_guard),
            top: at(&raw const __ist_double_fault_top),
        },
        StackArea { name: "nmi", guard: at(&raw const __ist_nmi_guard), top: at(&raw const __ist_nmi_top) },
        StackArea {
            name: "machine-check",
            guard: at(&raw const __ist_machine_check_guard),
            top: at(&raw const __ist_machine_check_top),
        },
    ]
}
