//! The network stack: smoltcp over the network card (any driver, through
//! `drivers::net::NetDevice`), configured statically
//! (`ip=`/`gw=`) or by DHCP, started the first time an app asks for a socket.
//!
//! Apps see only [`TcpListener`], [`TcpStream`] and [`UdpSocket`] (through
//! [`crate::app`]), never smoltcp or driver types.

mod conns;
mod nic;
mod tcp;
mod udp;

use alloc::vec;
use alloc::vec::Vec;
use core::cell::RefCell;

use drivers::net::{MAX_FRAME, NetDevice, RxFrame};
use smoltcp::iface::{Config, Interface, SocketHandle};
use smoltcp::phy::{Device, DeviceCapabilities, Medium};
use smoltcp::socket::dhcpv4;
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpCidr, Ipv4Address, Ipv4Cidr};
use spin::{Mutex, Once};

pub(crate) use nic::NET_VECTOR;
pub use tcp::{NetError, TcpListener, TcpStream};
pub use udp::{SocketAddr, UdpSocket};

use crate::dma::Buffer;
use nic::Nic;

/// Static addressing from the command line (DHCP when absent), the virtio-mmio
/// devices the command line or ACPI announced, and `max_conns=`.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct NetConfig {
    pub(crate) ip: Option<([u8; 4], u8)>,
    pub(crate) gateway: Option<[u8; 4]>,
    pub(crate) mmio: [Option<drivers::virtio::mmio::MmioDevice>; 8],
    pub(crate) max_conns: Option<usize>,
    /// `net.nic=`: the card to use when there are several.
    pub(crate) nic: Option<bootinfo::cmdline::NicChoice>,
    /// `net.irq=`: how cards may interrupt, at most.
    pub(crate) irq: bootinfo::cmdline::IrqLimit,
}

static CONFIG: Once<NetConfig> = Once::new();

pub(crate) fn configure(config: NetConfig) {
    CONFIG.call_once(|| config);
}

/// The card as smoltcp sees it. Received buffers come back through `recycled`, because
/// smoltcp's receive token cannot borrow the card mutably while the transmit token does.
struct Port {
    nic: RefCell<Nic>,
    recycled: RefCell<Vec<RxFrame<Buffer>>>,
    /// Where a frame goes when no send buffer is free after all (allocated once, so
    /// sending never allocates).
    scratch: RefCell<Vec<u8>>,
}

pub(crate) struct Stack {
    iface: Interface,
    sockets: conns::Sockets,
    /// Accepted connections, counted against `max_conns`.
    conns: conns::Conns,
    /// Handshakes a listener may hold.
    backlog: usize,
    port: Port,
    dhcp: Option<SocketHandle>,
    /// Sockets closed by their owners (with their connection slot) or refused, removed
    /// once the connection is fully closed.
    closing: Vec<(SocketHandle, u64, Option<usize>)>,
    /// Listening ports, by `TcpListener` id.
    listeners: Vec<Option<tcp::ListenQueue>>,
    /// How the card signals; a polled card cuts idle waits to `POLL_INTERVAL_NS`.
    signal: nic::Signal,
    /// When a frame last came in, or the card was last kicked (kernel ns), and how
    /// long a silence gets the next kick.
    heard_ns: u64,
    kick_after_ns: u64,
    /// The card's link as last seen (checked after a silence).
    link_up: bool,
    /// DHCP was restarted after the link came back: the address is kept until the
    /// server answers, so connections carry on if it gives the same one.
    rediscovering: bool,
}

/// The GSI of a level-triggered card line, which the interrupt handler masks (read
/// without the stack's lock); `u32::MAX` for none.
static LEVEL_GSI: core::sync::atomic::AtomicU32 = core::sync::atomic::AtomicU32::new(u32::MAX);

/// Called from the interrupt handler for the card's vector.
pub(crate) fn on_interrupt() {
    let gsi = LEVEL_GSI.load(core::sync::atomic::Ordering::Relaxed);
    if gsi != u32::MAX {
        crate::interrupts::set_masked(gsi, true);
    }
}

/// The longest a closed connection may take to finish its shutdown (a peer that never
/// acknowledges the last data or never sends its FIN).
const CLOSE_LIMIT_NS: u64 = 10_000_000_000;

/// Socket-table slots for sockets other than TCP connections: DHCP and UDP.
const OTHER_SOCKETS: usize = 8;

/// How often a card without interrupts is polled while idle.
const POLL_INTERVAL_NS: u64 = 1_000_000;

/// A card silent this long after traffic is notified of both queues once more, and
/// again after each doubling of the silence, up to `KICK_MAX_NS` apart. The virtio
/// notification protocol needs a full fence between publishing buffers and reading the
/// device's event index; QEMU's TCG drops guest fences when it runs one vCPU, so under
/// load a notification the device waits for is now and then never sent (seen with 1024
/// clients: 256 receive buffers posted, the device waiting for a kick, the guest
/// halted). A lost kick then costs 50 ms, not the connection; an idle card costs one
/// register write a second.
const KICK_AFTER_NS: u64 = 50_000_000;
const KICK_MAX_NS: u64 = 1_000_000_000;

static STACK: Mutex<Option<Stack>> = Mutex::new(None);
static STARTED: Once<Result<(), NetError>> = Once::new();

struct RxToken<'a> {
    frame: RxFrame<Buffer>,
    recycled: &'a RefCell<Vec<RxFrame<Buffer>>>,
}

impl smoltcp::phy::RxToken for RxToken<'_> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        let r = f(self.frame.frame());
        self.recycled.borrow_mut().push(self.frame);
        r
    }
}

struct TxToken<'a> {
    nic: &'a RefCell<Nic>,
    scratch: &'a RefCell<Vec<u8>>,
}

impl smoltcp::phy::TxToken for TxToken<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut f = Some(f);
        let mut nic = self.nic.borrow_mut();
        // `transmit` handed out this token only when a buffer was free; if none is, the
        // frame is built and dropped.
        match nic.send(len, |buf| (f.take().unwrap())(buf)) {
            Some(r) => r,
            None => {
                let mut scratch = self.scratch.borrow_mut();
                let len = len.min(scratch.len());
                (f.take().unwrap())(&mut scratch[..len])
            }
        }
    }
}

impl Device for Port {
    type RxToken<'a> = RxToken<'a>;
    type TxToken<'a> = TxToken<'a>;

    fn receive(&mut self, _now: Instant) -> Option<(RxToken<'_>, TxToken<'_>)> {
        let mut nic = self.nic.borrow_mut();
        for frame in self.recycled.get_mut().drain(..) {
            nic.recycle(frame);
        }
        if !nic.can_send() {
            return None;
        }
        let frame = nic.receive()?;
        Some((
            RxToken { frame, recycled: &self.recycled },
            TxToken { nic: &self.nic, scratch: &self.scratch },
        ))
    }

    fn transmit(&mut self, _now: Instant) -> Option<TxToken<'_>> {
        self.nic.get_mut().can_send().then_some(TxToken { nic: &self.nic, scratch: &self.scratch })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = MAX_FRAME;
        caps.max_burst_size = Some(16);
        caps
    }
}

/// smoltcp's time for a kernel-clock reading.
fn instant(ns: u64) -> Instant {
    Instant::from_micros((ns / 1000) as i64)
}

fn start() -> Result<(), NetError> {
    let cfg = CONFIG.get().copied().unwrap_or_default();
    let nic = match nic::probe(&cfg.mmio, cfg.nic, cfg.irq) {
        None => return Err(NetError::NoDevice),
        Some(Err(e)) => {
            log::error!("net: {e}");
            return Err(NetError::NoDevice);
        }
        Some(Ok(probed)) => probed,
    };
    let (nic, signal) = nic;
    if let nic::Signal::Line(line) = signal
        && line.level
    {
        LEVEL_GSI.store(line.gsi, core::sync::atomic::Ordering::Relaxed);
    }
    let mac = nic.mac();
    let mut port = Port {
        nic: RefCell::new(nic),
        // `receive` gives back every consumed frame before it takes the next: a few slots
        // are all this ever holds.
        recycled: RefCell::new(Vec::with_capacity(4)),
        scratch: RefCell::new(vec![0; MAX_FRAME]),
    };
    let mut config = Config::new(HardwareAddress::Ethernet(EthernetAddress(mac)));
    config.random_seed = pv::native::tsc::rdtsc();
    let mut iface = Interface::new(config, &mut port, instant(crate::time::since_boot_ns()));
    // The socket table never shrinks (smoltcp keeps its slots), so it is reserved for the
    // whole budget now: a flood then leaves the heap where it found it, and the table
    // never has to grow.
    let budget = tcp::budget(cfg.max_conns);
    let mut sockets = conns::Sockets::with_slots(budget.socket_slots(tcp::LISTENING, OTHER_SOCKETS));
    let dhcp = match cfg.ip {
        Some((ip, prefix)) => {
            let [a, b, c, d] = ip;
            iface.update_ip_addrs(|addrs| {
                let _ = addrs.push(IpCidr::new(Ipv4Address::new(a, b, c, d).into(), prefix));
            });
            if let Some([a, b, c, d]) = cfg.gateway {
                let _ = iface.routes_mut().add_default_ipv4_route(Ipv4Address::new(a, b, c, d));
            }
            log::info!(
                "net: mac {} ip {}.{}.{}.{}/{prefix} gw {:?} (static)",
                EthernetAddress(mac),
                a,
                b,
                c,
                d,
                cfg.gateway
            );
            None
        }
        None => {
            log::info!("net: mac {}, asking DHCP for an address", EthernetAddress(mac));
            sockets.add(dhcpv4::Socket::new())
        }
    };
    let slots = budget.socket_slots(tcp::LISTENING, OTHER_SOCKETS);
    *STACK.lock() = Some(Stack {
        iface,
        sockets,
        conns: conns::Conns::new(budget.max_conns),
        backlog: budget.backlog,
        port,
        dhcp,
        closing: Vec::with_capacity(slots),
        listeners: Vec::new(),
        signal,
        heard_ns: 0,
        kick_after_ns: KICK_AFTER_NS,
        link_up: true,
        rediscovering: false,
    });
    Ok(())
}

/// Starts the stack on first use.
pub(crate) fn ensure_started() -> Result<(), NetError> {
    *STARTED.call_once(start)
}

/// Runs `f` on the stack (started).
pub(crate) fn with_stack<R>(f: impl FnOnce(&mut Stack) -> R) -> Result<R, NetError> {
    ensure_started()?;
    let mut stack = STACK.lock();
    let stack = stack.as_mut().ok_or(NetError::NoDevice)?;
    Ok(f(stack))
}

impl Stack {
    /// Receives what the card holds, servicing listeners after every packet (so a burst
    /// of SYNs never finds them out of listening sockets), then transmits.
    fn poll(&mut self) -> bool {
        use smoltcp::iface::{PollIngressSingleResult, PollResult};
        // One clock read serves the stack, the kick check and the reaper.
        let now_ns = crate::time::since_boot_ns();
        let now = instant(now_ns);
        let mut changed = false;
        let mut received = false;
        self.iface.poll_maintenance(now);
        loop {
            match self.iface.poll_ingress_single(now, &mut self.port, &mut self.sockets.set) {
                PollIngressSingleResult::None => break,
                PollIngressSingleResult::PacketProcessed => received = true,
                PollIngressSingleResult::SocketStateChanged => {
                    received = true;
                    changed = true;
                    self.service_listeners();
                }
            }
        }
        if received {
            self.heard_ns = now_ns;
            self.kick_after_ns = KICK_AFTER_NS;
        } else if now_ns.saturating_sub(self.heard_ns) >= self.kick_after_ns {
            self.port.nic.get_mut().kick();
            self.watch_link();
            self.heard_ns = now_ns;
            self.kick_after_ns = (self.kick_after_ns * 2).min(KICK_MAX_NS);
        }
        while self.iface.poll_egress(now, &mut self.port, &mut self.sockets.set)
            == PollResult::SocketStateChanged
        {
            changed = true;
        }
        if let Some(handle) = self.dhcp {
            match self.sockets.get_mut::<dhcpv4::Socket>(handle).poll() {
                Some(dhcpv4::Event::Configured(c)) => {
                    let addr: Ipv4Cidr = c.address;
                    self.iface.update_ip_addrs(|addrs| {
                        addrs.clear();
                        let _ = addrs.push(IpCidr::Ipv4(addr));
                    });
                    if let Some(router) = c.router {
                        let _ = self.iface.routes_mut().add_default_ipv4_route(router);
                    }
                    self.rediscovering = false;
                    log::info!("net: DHCP gave ip {addr} gw {:?}", c.router);
                }
                Some(dhcpv4::Event::Deconfigured) if self.rediscovering => {}
                Some(dhcpv4::Event::Deconfigured) => {
                    if self.iface.ipv4_addr().is_some() {
                        log::warn!("net: DHCP lease lost");
                    }
                    self.iface.update_ip_addrs(|addrs| addrs.clear());
                }
                None => {}
            }
        }
        self.reap(now_ns);
        changed
    }

    /// Says when the card's link goes down or comes back, and asks DHCP again when it
    /// comes back (the card may be on another network now). A card on the hypervisor's bus
    /// that went away (Xen's `xl network-detach`) is replaced by the next one the bus
    /// offers (`xl network-attach`), keeping the addresses and the sockets: the silence
    /// that runs this check comes at most a second apart while the link is down.
    fn watch_link(&mut self) {
        let up = self.port.nic.get_mut().link_up();
        if up != self.link_up {
            if up {
                log::info!("net: link up");
                self.renew_dhcp();
            } else if let Some(fault) = self.port.nic.get_mut().fault() {
                log::warn!("net: link down: {fault}")
            } else {
                log::warn!("net: link down")
            }
            self.link_up = up;
        }
        if up || self.signal != nic::Signal::Event {
            return;
        }
        match nic::probe_hypervisor_bus() {
            Some(Ok((card, _))) => {
                // Frames lent out belong to the old card's buffers.
                self.port.recycled.get_mut().clear();
                let mac = card.mac();
                *self.port.nic.get_mut() = card;
                self.iface.set_hardware_addr(HardwareAddress::Ethernet(EthernetAddress(mac)));
                self.link_up = true;
                log::info!("net: link up on a new card, mac {}", EthernetAddress(mac));
                self.renew_dhcp();
            }
            Some(Err(e)) => log::warn!("net: the card offered in its place did not start: {e}"),
            None => {}
        }
    }

    /// Starts DHCP over (a lease being held or not), keeping the address meanwhile.
    fn renew_dhcp(&mut self) {
        if let Some(handle) = self.dhcp {
            self.rediscovering = self.iface.ipv4_addr().is_some();
            self.sockets.get_mut::<dhcpv4::Socket>(handle).reset();
            log::info!("net: asking DHCP again");
        }
    }

    /// Removes closed sockets. TIME-WAIT is not kept: a socket there would hold its full
    /// buffers for the state's whole duration (smoltcp has no light time-wait form), and
    /// under connection-per-request load thousands pile up and slow every poll; a late
    /// duplicate from the peer then meets a reset instead. A socket that has not finished
    /// closing after `CLOSE_LIMIT_NS` (a peer that never sends its FIN) is aborted.
    fn reap(&mut self, now_ns: u64) {
        use smoltcp::socket::tcp::{Socket, State};
        self.expire_handshakes(now_ns);
        let (sockets, conns) = (&mut self.sockets, &mut self.conns);
        let before = self.closing.len();
        self.closing.retain(|&(h, since, slot)| {
            let socket = sockets.get_mut::<Socket>(h);
            let done = matches!(socket.state(), State::Closed | State::TimeWait);
            if done || now_ns.saturating_sub(since) > CLOSE_LIMIT_NS {
                if !done {
                    socket.abort();
                }
                sockets.remove(h);
                if let Some(slot) = slot {
                    conns.release(slot);
                }
                return false;
            }
            true
        });
        // Said when the last closing socket goes (the heap at rest, for tests and the
        // soak benchmark), not for every socket, which under load would flood the console.
        if self.closing.is_empty() && before != 0 && log::log_enabled!(log::Level::Debug) {
            let heap = crate::heap_stats();
            log::debug!(
                "net: {} sockets, {} closing; heap {} bytes in {} allocations",
                self.sockets.live(),
                self.closing.len(),
                heap.allocated,
                heap.allocations
            );
        }
    }
}

/// Polls the stack if it runs; whether anything happened.
pub(crate) fn poll() -> bool {
    if STARTED.get().is_none() {
        return false;
    }
    match STACK.lock().as_mut() {
        Some(stack) => stack.poll(),
        None => false,
    }
}

/// How long the stack may sleep before it must be polled again.
pub(crate) fn poll_delay_ns() -> Option<u64> {
    let mut stack = STACK.lock();
    let stack = stack.as_mut()?;
    let now_ns = crate::time::since_boot_ns();
    let delay = stack.iface.poll_delay(instant(now_ns), &stack.sockets.set).map(|d| d.total_micros() * 1000);
    // A polled card is looked at every `POLL_INTERVAL_NS`; any card is kicked after a
    // silence (see `KICK_AFTER_NS`), so the idle loop wakes for that.
    let kick_at = (stack.heard_ns + stack.kick_after_ns).saturating_sub(now_ns).max(1);
    let limit = if stack.signal == nic::Signal::Polled { POLL_INTERVAL_NS.min(kick_at) } else { kick_at };
    Some(delay.map_or(limit, |d| d.min(limit)))
}

/// Whether the card has work waiting: frames received, or a send buffer back while all
/// were in flight (checked with interrupts off before halting).
/// Acknowledges the card's interrupt first: on MMIO the line stays raised until then,
/// and an edge-triggered I/O APIC would see no new edge. MSI-X needs no acknowledgement,
/// and skipping it saves a trip to the device model per halt.
pub(crate) fn has_work() -> bool {
    STACK.lock().as_mut().is_some_and(|s| {
        let nic = s.port.nic.get_mut();
        if s.signal != nic::Signal::Msix {
            nic.ack_interrupt();
        }
        if let nic::Signal::Line(line) = s.signal
            && line.level
        {
            // Acknowledged at the device: the line may be armed again.
            crate::interrupts::set_masked(line.gsi, false);
        }
        nic.has_work()
    })
}

/// Whether the card has work waiting, for the idle loop's polling: no device access,
/// only memory the card writes.
pub(crate) fn work_pending() -> bool {
    STACK.lock().as_mut().is_some_and(|s| s.port.nic.get_mut().has_work())
}

/// Card interrupts on while idle, off while busy polling.
pub(crate) fn set_interrupts(on: bool) {
    if let Some(stack) = STACK.lock().as_mut() {
        stack.port.nic.get_mut().set_interrupts(on);
    }
}
