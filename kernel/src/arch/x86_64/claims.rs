//! Who drives which I/O ports and MMIO windows: the one place port and MMIO handles come
//! from ([`super::port::PortRange::claim`], [`super::mmio::MmioRange::claim`]), which
//! refuses a range that overlaps one already handed out. A handle gives its range back
//! when dropped.

use spin::Mutex;

/// The two address spaces devices sit in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Space {
    Port,
    Mmio,
}

/// Why a claim was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimError {
    /// Another handle holds `[base, base + len)`, which overlaps the range asked for.
    Taken { space: Space, base: u64, len: u64 },
    /// The range is empty or runs past the end of its space.
    Invalid,
    /// The table of claims is full.
    TooMany,
}

impl core::fmt::Display for ClaimError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ClaimError::Taken { space, base, len } => {
                write!(f, "{space:?} range {base:#x}..{:#x} is already claimed", base + len)
            }
            ClaimError::Invalid => write!(f, "empty or out-of-range window"),
            ClaimError::TooMany => write!(f, "too many device windows claimed"),
        }
    }
}

const MAX_CLAIMS: usize = 64;

type Claim = (Space, u64, u64);

/// The ports the pv-ops backends drive themselves, claimed from the start.
static CLAIMS: Mutex<[Option<Claim>; MAX_CLAIMS]> = Mutex::new({
    let mut table = [None; MAX_CLAIMS];
    let mut i = 0;
    while i < pv::native::PORTS_IN_USE.len() {
        let (base, len) = pv::native::PORTS_IN_USE[i];
        table[i] = Some((Space::Port, base as u64, len as u64));
        i += 1;
    }
    table
});

/// Records `[base, base + len)` in `space` as driven by one handle.
pub fn claim(space: Space, base: u64, len: u64) -> Result<(), ClaimError> {
    let end = base.checked_add(len).filter(|_| len > 0).ok_or(ClaimError::Invalid)?;
    if space == Space::Port && end > 0x1_0000 {
        return Err(ClaimError::Invalid);
    }
    let mut claims = CLAIMS.lock();
    if let Some(&(space, base, len)) =
        claims.iter().flatten().find(|&&(s, b, l)| s == space && b < end && base < b + l)
    {
        return Err(ClaimError::Taken { space, base, len });
    }
    let slot = claims.iter_mut().find(|c| c.is_none()).ok_or(ClaimError::TooMany)?;
    *slot = Some((space, base, len));
    Ok(())
}

/// Gives back a range [`claim`] recorded.
pub fn release(space: Space, base: u64, len: u64) {
    if let Some(slot) = CLAIMS.lock().iter_mut().find(|c| **c == Some((space, base, len))) {
        *slot = None;
    }
}
