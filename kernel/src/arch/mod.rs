//! Architecture code. Only x86_64 exists; keeping it under `arch/` keeps the portable
//! kernel (boot sequence, memory policy, console, exit, apps) apart from it.

mod x86_64;
pub(crate) use self::x86_64::*;
