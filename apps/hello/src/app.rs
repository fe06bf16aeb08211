//! hello's code: built for the kernel target only (see main.rs).

use kernel::app::{AppResult, Args, println};

fn main(args: &Args<'_>) -> AppResult {
    let f = args.facts();
    println!(
        "hello from chameleon: boot={} ram={}MiB free={}MiB cpu=\"{}\" hypervisor={} pv={} tsc={}kHz nx={} exit={}",
        f.protocol,
        f.ram_bytes >> 20,
        f.free_bytes >> 20,
        f.cpu_brand,
        f.hypervisor,
        f.pv_backend,
        f.tsc_khz,
        f.nx,
        f.exit_method
    );
    for (i, module) in f.modules.iter().enumerate() {
        println!("hello: module {i}: {} bytes", module.len());
    }
    for (i, arg) in args.args().enumerate() {
        println!("hello: argument {i}: {arg}");
    }
    Ok(())
}

kernel::app!(main);
