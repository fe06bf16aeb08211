//! What the kernel's network stack needs from any network card, and [`AnyNic`], the one
//! card type it holds: an enum over the drivers, so the request path is a `match`, not an
//! indirect call. [`choice`] picks the card when there are several.

pub mod choice;

use crate::dma::{DmaAllocator, DmaBuffer};
use crate::e1000::{self, E1000};
use crate::virtio;
use crate::virtio::net::VirtioNet;
use crate::vmxnet3::{self, Vmxnet3};
use crate::xen;
use crate::xen::netfront::Netfront;

/// The largest Ethernet frame (without FCS) a card sends or accepts.
pub const MAX_FRAME: usize = 1514;

/// A received frame: the buffer and where the frame lies in it. It goes back to its card
/// with [`NetDevice::recycle`].
#[derive(Debug)]
pub struct RxFrame<B> {
    pub buffer: B,
    pub offset: usize,
    pub len: usize,
}

impl<B: DmaBuffer> RxFrame<B> {
    pub fn frame(&self) -> &[u8] {
        &self.buffer.bytes()[self.offset..self.offset + self.len]
    }
}

/// A network card as the stack uses it. Received frames are lent out in the card's own
/// buffers and frames to send are written into them, so nothing is copied.
pub trait NetDevice {
    type Buffer: DmaBuffer;

    fn mac(&self) -> [u8; 6];
    /// Whether the card can carry frames (the cable, or the other end of a virtual link).
    fn link_up(&self) -> bool;
    /// The next received frame, if any.
    fn receive(&mut self) -> Option<RxFrame<Self::Buffer>>;
    /// Gives a received frame's buffer back to the card.
    fn recycle(&mut self, frame: RxFrame<Self::Buffer>);
    /// Whether a frame could be sent now.
    fn can_send(&mut self) -> bool;
    /// Sends a frame of `len` bytes (at most [`MAX_FRAME`]) that `fill` writes in place.
    /// `None` when no transmit buffer is free, and only then, and then without calling
    /// `fill` (the stack builds the frame elsewhere and drops it).
    fn send<R>(&mut self, len: usize, fill: impl FnOnce(&mut [u8]) -> R) -> Option<R>;
    /// Whether received frames are waiting, or a transmit buffer came back while every one
    /// was in flight. Reads only memory the card writes: cheap enough for the idle loop.
    fn has_work(&self) -> bool;
    /// Tells the card about every buffer it was given, whatever its notification
    /// suppression says: the safety net for a lost notification, called after a silence.
    fn kick(&mut self);
    /// Acknowledges an interrupt at the card (for level lines; harmless otherwise).
    fn ack_interrupt(&self);
    /// Interrupts on while the kernel idles, off while it polls. After turning them on,
    /// callers check [`has_work`](Self::has_work) once more to close the race with a
    /// frame that came in between.
    fn set_interrupts(&mut self, on: bool);
}

/// The types a kernel plugs into the drivers: its DMA allocator and its handles to each
/// kind of bus. One type names them all, so [`AnyNic`] takes one parameter however many
/// drivers it holds.
pub trait NicTypes {
    type Dma: DmaAllocator;
    type Virtio: virtio::Transport;
    /// The hypervisor's device bus, as its front ends take it (Xen's: grant table,
    /// xenstore, event channels; `xen::Absent` in a kernel without one).
    type HypervisorBus: xen::Xen;
    /// A card's memory-mapped register window (a PCI memory BAR).
    type Mmio: crate::Registers;
}

/// Every card the kernel can drive.
pub enum AnyNic<K: NicTypes> {
    Virtio(VirtioNet<K::Virtio, K::Dma>),
    Netfront(Netfront<K::Dma, K::HypervisorBus>),
    E1000(E1000<K::Mmio, K::Dma>),
    /// BAR0 and BAR1.
    Vmxnet3(Vmxnet3<K::Mmio, K::Dma>),
}

impl<K: NicTypes> core::fmt::Debug for AnyNic<K> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            AnyNic::Virtio(n) => n.fmt(f),
            AnyNic::Netfront(n) => n.fmt(f),
            AnyNic::E1000(n) => n.fmt(f),
            AnyNic::Vmxnet3(n) => n.fmt(f),
        }
    }
}

impl<K: NicTypes> AnyNic<K> {
    /// The driver's name, for logs.
    pub fn name(&self) -> &'static str {
        match self {
            AnyNic::Virtio(_) => "virtio-net",
            AnyNic::Netfront(_) => "netfront",
            AnyNic::E1000(n) => n.model().family(),
            AnyNic::Vmxnet3(_) => "vmxnet3",
        }
    }

    /// Resets the card, so it no longer receives, sends or interrupts, and drops the
    /// driver: for a card found beside the one the stack takes.
    pub fn stop(self) {
        match self {
            AnyNic::Virtio(n) => n.stop(),
            AnyNic::E1000(n) => n.stop(),
            AnyNic::Vmxnet3(n) => n.stop(),
            // Its pages stay granted to the back end: kept, never freed (the kernel
            // takes a card on the hypervisor's bus only when there is no other).
            AnyNic::Netfront(n) => core::mem::forget(n),
        }
    }

    /// Why the card stopped, when it reports that (its link then reads down).
    pub fn fault(&self) -> Option<NicError> {
        match self {
            AnyNic::Vmxnet3(n) => n.error().cloned().map(NicError::Vmxnet3),
            _ => None,
        }
    }
}

macro_rules! any {
    ($self:ident, $n:ident => $e:expr) => {
        match $self {
            AnyNic::Virtio($n) => $e,
            AnyNic::Netfront($n) => $e,
            AnyNic::E1000($n) => $e,
            AnyNic::Vmxnet3($n) => $e,
        }
    };
}

impl<K: NicTypes> NetDevice for AnyNic<K> {
    type Buffer = <K::Dma as DmaAllocator>::Buffer;

    #[inline]
    fn mac(&self) -> [u8; 6] {
        any!(self, n => n.mac())
    }
    #[inline]
    fn link_up(&self) -> bool {
        any!(self, n => n.link_up())
    }
    #[inline]
    fn receive(&mut self) -> Option<RxFrame<Self::Buffer>> {
        any!(self, n => n.receive())
    }
    #[inline]
    fn recycle(&mut self, frame: RxFrame<Self::Buffer>) {
        any!(self, n => n.recycle(frame))
    }
    #[inline]
    fn can_send(&mut self) -> bool {
        any!(self, n => n.can_send())
    }
    #[inline]
    fn send<R>(&mut self, len: usize, fill: impl FnOnce(&mut [u8]) -> R) -> Option<R> {
        any!(self, n => n.send(len, fill))
    }
    #[inline]
    fn has_work(&self) -> bool {
        any!(self, n => n.has_work())
    }
    #[inline]
    fn kick(&mut self) {
        any!(self, n => n.kick())
    }
    #[inline]
    fn ack_interrupt(&self) {
        any!(self, n => n.ack_interrupt())
    }
    #[inline]
    fn set_interrupts(&mut self, on: bool) {
        any!(self, n => n.set_interrupts(on))
    }
}

/// Why a card did not start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NicError {
    Virtio(virtio::Error),
    Netfront(xen::netfront::Error),
    E1000(e1000::Error),
    Vmxnet3(vmxnet3::Error),
}

impl From<e1000::Error> for NicError {
    fn from(e: e1000::Error) -> Self {
        NicError::E1000(e)
    }
}

impl From<virtio::Error> for NicError {
    fn from(e: virtio::Error) -> Self {
        NicError::Virtio(e)
    }
}

impl From<xen::netfront::Error> for NicError {
    fn from(e: xen::netfront::Error) -> Self {
        NicError::Netfront(e)
    }
}

impl From<vmxnet3::Error> for NicError {
    fn from(e: vmxnet3::Error) -> Self {
        NicError::Vmxnet3(e)
    }
}

impl core::fmt::Display for NicError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            NicError::Virtio(e) => write!(f, "virtio-net failed: {e}"),
            NicError::Netfront(e) => write!(f, "netfront failed: {e}"),
            NicError::E1000(e) => write!(f, "{e}"),
            // The error names the card.
            NicError::Vmxnet3(e) => write!(f, "{e}"),
        }
    }
}
