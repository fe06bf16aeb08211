//! The 16550 UART (PC COM ports), polled, for the console.

use crate::{Console, Registers};

const DATA: u16 = 0;
const INT_ENABLE: u16 = 1;
const DIVISOR_LOW: u16 = 0;
const DIVISOR_HIGH: u16 = 1;
const FIFO_CTRL: u16 = 2;
const LINE_CTRL: u16 = 3;
const MODEM_CTRL: u16 = 4;
const LINE_STATUS: u16 = 5;
const SCRATCH: u16 = 7;

const LINE_CTRL_8N1: u8 = 0x03;
const LINE_CTRL_DLAB: u8 = 0x80;
const LINE_STATUS_THR_EMPTY: u8 = 0x20;
/// 115200 baud from the 1.8432 MHz clock.
const DIVISOR_115200: u8 = 1;
/// A transmitter that stays busy this many polls is broken or absent; the byte is
/// dropped rather than hanging the kernel.
const MAX_POLLS: u32 = 100_000;
/// Bytes the transmit FIFO takes once it reports empty (16550A).
const TX_FIFO: usize = 16;

pub struct Uart16550<R: Registers> {
    regs: R,
}

impl<R: Registers> Uart16550<R> {
    /// Programs the port for 115200 8N1 with FIFOs, interrupts off. Returns `None` if no
    /// UART answers (the scratch register does not keep a value).
    pub fn init(regs: R) -> Option<Self> {
        regs.write8(SCRATCH, 0x5a);
        if regs.read8(SCRATCH) != 0x5a {
            return None;
        }
        regs.write8(INT_ENABLE, 0);
        regs.write8(LINE_CTRL, LINE_CTRL_DLAB);
        regs.write8(DIVISOR_LOW, DIVISOR_115200);
        regs.write8(DIVISOR_HIGH, 0);
        regs.write8(LINE_CTRL, LINE_CTRL_8N1);
        regs.write8(FIFO_CTRL, 0xc7); // enable, clear both, 14-byte threshold
        regs.write8(MODEM_CTRL, 0x03); // DTR, RTS
        Some(Uart16550 { regs })
    }

    /// Waits until the transmit FIFO is empty; false if it never empties.
    fn wait_tx_empty(&self) -> bool {
        for _ in 0..MAX_POLLS {
            if self.regs.read8(LINE_STATUS) & LINE_STATUS_THR_EMPTY != 0 {
                return true;
            }
            core::hint::spin_loop();
        }
        false
    }

    /// Writes text, turning `\n` into the `\r\n` terminals expect. The status register
    /// is polled once per FIFO-full of bytes, not once per byte: under emulation every
    /// register access is a trip to the device model.
    pub fn write_text(&self, bytes: &[u8]) {
        let mut room = 0;
        for &b in bytes {
            let cr = b == b'\n';
            for byte in [b'\r', b].into_iter().skip(usize::from(!cr)) {
                if room == 0 {
                    if !self.wait_tx_empty() {
                        return;
                    }
                    room = TX_FIFO;
                }
                self.regs.write8(DATA, byte);
                room -= 1;
            }
        }
    }
}

impl<R: Registers + Sync> Console for Uart16550<R> {
    fn write(&self, bytes: &[u8]) {
        self.write_text(bytes);
    }
}

impl<R: Registers> core::fmt::Debug for Uart16550<R> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Uart16550")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mock::MockRegisters;
    extern crate std;
    use std::vec::Vec;

    /// A mock whose scratch register echoes and whose transmitter is always ready.
    fn ready_uart() -> MockRegisters {
        let m = MockRegisters::new(0);
        m.reads.borrow_mut().insert(SCRATCH, 0x5a);
        m.reads.borrow_mut().insert(LINE_STATUS, u32::from(LINE_STATUS_THR_EMPTY));
        m
    }

    #[test]
    fn absent_uart_is_not_used() {
        assert!(Uart16550::init(MockRegisters::new(0xff)).is_none());
    }

    #[test]
    fn init_programs_115200_8n1() {
        let uart = Uart16550::init(ready_uart()).unwrap();
        let writes = uart.regs.writes.borrow().clone();
        let pos = |w: (u16, u32, u8)| writes.iter().position(|x| *x == w).unwrap();
        assert!(pos((LINE_CTRL, 0x80, 1)) < pos((DIVISOR_LOW, 1, 1)));
        assert!(pos((DIVISOR_LOW, 1, 1)) < pos((LINE_CTRL, 0x03, 1)));
    }

    #[test]
    fn newline_becomes_crlf() {
        let uart = Uart16550::init(ready_uart()).unwrap();
        uart.regs.writes.borrow_mut().clear();
        uart.write_text(b"a\nb");
        let data: Vec<u8> = uart.regs.writes.borrow().iter().map(|w| w.1 as u8).collect();
        assert_eq!(data, b"a\r\nb");
    }

    #[test]
    fn stuck_transmitter_drops_bytes_instead_of_hanging() {
        let m = MockRegisters::new(0);
        m.reads.borrow_mut().insert(SCRATCH, 0x5a);
        let uart = Uart16550::init(m).unwrap();
        uart.regs.writes.borrow_mut().clear();
        uart.write_text(b"x");
        assert!(uart.regs.writes.borrow().is_empty());
    }
}
