//! The device's interface, as laid out by VMware (revision 1; the same layout Linux's
//! `vmxnet3_defs.h` and QEMU's model use): register offsets, commands, event bits, the
//! driver-shared area and queue descriptors (as byte offsets), and descriptor bits.

/// BAR0 registers (each 8 bytes apart per queue or interrupt).
pub(crate) mod pt {
    /// Interrupt mask of interrupt 0: 1 masks.
    pub const IMR: u16 = 0x000;
    pub const TXPROD: u16 = 0x600;
    pub const RXPROD: u16 = 0x800;
    pub const RXPROD2: u16 = 0xa00;
}

/// BAR1 registers.
pub(crate) mod vd {
    /// Revision report and select.
    pub const VRRS: u16 = 0x00;
    /// UPT version report and select.
    pub const UVRS: u16 = 0x08;
    /// Driver-shared area address, low then high half.
    pub const DSAL: u16 = 0x10;
    pub const DSAH: u16 = 0x18;
    pub const CMD: u16 = 0x20;
    pub const MACL: u16 = 0x28;
    pub const MACH: u16 = 0x30;
    /// Interrupt cause (INTx): reading it acknowledges.
    pub const ICR: u16 = 0x38;
    /// Event cause: writing bits acknowledges them.
    pub const ECR: u16 = 0x40;
}

pub(crate) mod cmd {
    pub const ACTIVATE_DEV: u32 = 0xcafe_0000;
    pub const RESET_DEV: u32 = 0xcafe_0002;
    pub const GET_QUEUE_STATUS: u32 = 0xf00d_0000;
    pub const GET_LINK: u32 = 0xf00d_0002;
}

/// Event cause bits (driver-shared `ecr` and the ECR register).
pub mod event {
    pub const RQERR: u32 = 1 << 0;
    pub const TQERR: u32 = 1 << 1;
    pub const LINK: u32 = 1 << 2;
}

/// Offsets in the driver-shared area (`Vmxnet3_DriverShared`).
pub(crate) mod shared {
    pub const MAGIC: usize = 0;
    pub const MAGIC_VALUE: u32 = 0xbabe_fee1;
    // devRead.misc.driverInfo
    pub const DRIVER_VERSION: usize = 8;
    pub const GUEST_OS: usize = 12;
    pub const REVISION_SUPPORT: usize = 16;
    pub const UPT_SUPPORT: usize = 20;
    // devRead.misc
    pub const QUEUE_DESC_PA: usize = 40;
    pub const QUEUE_DESC_LEN: usize = 52;
    pub const MTU: usize = 56;
    /// maxNumRxSG (u16), numTxQueues (u8), numRxQueues (u8).
    pub const RX_SG_AND_QUEUES: usize = 60;
    // devRead.intrConf: autoMask, numIntrs, eventIntrIdx, modLevels[0] (one u8 each)
    pub const INTR_CONF: usize = 80;
    pub const INTR_CTRL: usize = 108;
    // devRead.rxFilterConf
    pub const RX_MODE: usize = 120;
    /// The VLAN filter, one bit per VLAN id.
    pub const VLAN_FILTER: usize = 136;
    /// Event cause the device sets.
    pub const ECR: usize = 696;
    pub const LEN: usize = 720;
}

// The queue descriptors follow the driver-shared area in its allocation.
const _: () = assert!(shared::LEN <= qdesc::TX);

/// Queue descriptors (`Vmxnet3_TxQueueDesc`, then `Vmxnet3_RxQueueDesc`), 256 bytes
/// each, after the driver-shared area in the same allocation.
pub(crate) mod qdesc {
    pub const TX: usize = 1024;
    pub const RX: usize = TX + 256;
    pub const LEN: usize = 512;
    // Offsets within one descriptor.
    pub const RING: usize = 16;
    pub const RING2: usize = 24;
    pub const COMP_RING: usize = 32;
    pub const RING_SIZE: usize = 56;
    pub const RING2_SIZE: usize = 60;
    pub const COMP_RING_SIZE: usize = 64;
    pub const INTR_IDX: usize = 72;
    pub const STOPPED: usize = 80;
    pub const ERROR: usize = 84;
}

pub(crate) const RXM_UCAST: u32 = 1 << 0;
pub(crate) const RXM_BCAST: u32 = 1 << 2;

/// Every descriptor, of every ring, is 16 bytes.
pub(crate) const DESC: usize = 16;
/// Rings are multiples of 32 descriptors (Linux keeps to this; VMware's devices ask it).
pub const RING_ALIGN: u16 = 32;
/// A ring never gets longer than this.
pub const MAX_RING: u16 = 256;
/// Receive ring 1 gets the minimum: nothing is ever posted there.
pub(crate) const RING1: u16 = RING_ALIGN;
/// An Ethernet frame of 1514 bytes, rounded up.
pub const BUFFER_LEN: usize = 2048;
pub const MTU: u32 = 1500;

// Transmit descriptor, dword 2: length (14 bits), generation at 14.
pub(crate) const TXD_GEN: u32 = 1 << 14;
// Dword 3: end of packet, and ask for a completion.
pub(crate) const TXD_EOP: u32 = 1 << 12;
pub(crate) const TXD_CQ: u32 = 1 << 13;
// Receive descriptor, dword 2: length (14 bits), buffer type 0 (head), generation at 31.
pub(crate) const RXD_GEN: u32 = 1 << 31;
// Completion descriptors carry their generation in bit 31 of dword 3.
pub(crate) const COMP_GEN: u32 = 1 << 31;
// Receive completion, dword 0: descriptor index (12 bits), end and start of packet,
// ring id (10 bits at 16); dword 2: length (14 bits), error at 14.
pub(crate) const RXCD_EOP: u32 = 1 << 14;
pub(crate) const RXCD_SOP: u32 = 1 << 15;
pub(crate) const RXCD_ERR: u32 = 1 << 14;
