//! QEMU's `isa-debug-exit` device: a write ends QEMU with status `(value << 1) | 1`,
//! which is how tests learn the app's exit code.

use crate::Registers;

pub struct DebugExit<R: Registers> {
    regs: R,
}

impl<R: Registers> DebugExit<R> {
    /// The device reads as 0; a port with nothing behind it reads as all ones.
    pub fn probe(regs: R) -> Option<Self> {
        (regs.read8(0) == 0).then_some(DebugExit { regs })
    }

    /// Asks QEMU to exit. Returns only if QEMU did not (then the caller powers off).
    pub fn exit(&self, code: u32) {
        self.regs.write32(0, code);
    }
}

impl<R: Registers> core::fmt::Debug for DebugExit<R> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("DebugExit")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mock::MockRegisters;

    #[test]
    fn probe_and_exit() {
        assert!(DebugExit::probe(MockRegisters::new(0xff)).is_none());
        let dev = DebugExit::probe(MockRegisters::new(0)).unwrap();
        dev.exit(101);
        assert_eq!(*dev.regs.writes.borrow(), [(0, 101, 4)]);
    }
}
