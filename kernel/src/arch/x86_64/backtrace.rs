//! Frame-pointer backtraces (the kernel is built with frame pointers).

use super::entry::stacks;

const MAX_FRAMES: usize = 32;

/// Prints the return addresses up the frame-pointer chain starting at `rbp`. Only
/// frames inside a kernel stack are followed, so a corrupt chain ends the walk instead
/// of faulting.
pub fn print_from(mut rbp: u64) {
    crate::println!("backtrace (return addresses; resolve with addr2line -e <image>):");
    let stacks = stacks();
    for depth in 0..MAX_FRAMES {
        let on_stack =
            rbp.is_multiple_of(8) && stacks.iter().any(|s| s.contains(rbp) && s.contains(rbp + 15));
        if !on_stack {
            break;
        }
        // SAFETY: `rbp` and `rbp + 8` lie inside a mapped kernel stack (checked above).
        let (next, ret) = unsafe { (*(rbp as *const u64), *((rbp + 8) as *const u64)) };
        if ret == 0 {
            break;
        }
        crate::println!("  #{depth:<2} {ret:#018x}");
        rbp = next;
    }
}
