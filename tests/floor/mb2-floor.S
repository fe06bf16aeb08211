/*
 * mb2-floor.S - the smallest multiboot2 kernel, the floor of the GRUB boot rows of
 * `bench boot`: GRUB loads it exactly as it loads an app image (same header shape,
 * ELF at 1 MiB), and it exits through isa-debug-exit with value 0 at once, so its
 * time is firmware + GRUB + QEMU and nothing else.
 */
    .section .multiboot2, "a"
    .balign 8
header:
    .long 0xe85250d6                    /* magic */
    .long 0                             /* i386 protected mode */
    .long header_end - header
    .long 0x100000000 - (0xe85250d6 + (header_end - header))
    .balign 8
    .short 0, 0                         /* end tag */
    .long 8
header_end:

    .text
    .code32
    .global _start
_start:
    mov $0x501, %dx
    xor %eax, %eax
    out %al, %dx
1:  cli
    hlt
    jmp 1b
