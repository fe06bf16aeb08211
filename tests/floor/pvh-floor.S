/*
 * pvh-floor.S - the smallest useful PVH guest, used as the boot-time floor.
 *
 * QEMU enters it in 32-bit flat protected mode (paging off) at the address
 * published in the Xen PHYS32_ENTRY ELF note, with %ebx pointing at the
 * hvm_start_info structure. If a kernel command line was given (-append), it
 * is echoed to COM1 followed by '\n' so the harness's serial path can be tested;
 * with an empty command line it goes straight to isa-debug-exit, so the floor
 * measures nothing but QEMU + firmware + PVH entry.
 */

/* Xen ELF note: namesz=4 ("Xen\0"), descsz=4, type 18 = XEN_ELFNOTE_PHYS32_ENTRY. */
    .section .note.Xen, "a", @note
    .balign 4
    .long 4
    .long 4
    .long 18
    .asciz "Xen"
    .balign 4
    .long _start
    .balign 4

/* Write %al to COM1, polling LSR.THRE first. No stack exists, so no `call`. */
.macro PUTC
    mov %al, %cl
    mov $0x3fd, %dx
99: in %dx, %al
    test $0x20, %al
    jz 99b
    mov $0x3f8, %dx
    mov %cl, %al
    out %al, %dx
.endm

    .section .text, "ax"
    .code32
    .globl _start
_start:
    cld
    test %ebx, %ebx
    jz exit
    mov 24(%ebx), %esi          /* hvm_start_info.cmdline_paddr (low 32 bits) */
    test %esi, %esi
    jz exit
    cmpb $0, (%esi)
    je exit
print:
    lodsb
    test %al, %al
    jz newline
    PUTC
    jmp print
newline:
    mov $'\n', %al
    PUTC
exit:
    /* isa-debug-exit: writing v makes QEMU exit with status (v << 1) | 1 = 1. */
    mov $0x501, %dx
    xor %eax, %eax
    out %al, %dx
halt:                           /* reached only without the debug-exit device */
    cli
    hlt
    jmp halt
