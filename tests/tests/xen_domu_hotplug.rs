//! httpd as a Xen PV domU losing its network card and getting a new one, without a
//! reboot: `xl network-detach` takes the vif away (the back end closes; netfront gives
//! its grants back and the stack says the link is down), `xl network-attach` brings a
//! new one, which the stack takes up in the old card's place.

use std::time::Duration;

use tests::build_app;
use tests::xen_domu::{Domu, DomuType, Options, Testbed, TestbedError};

#[test]
fn detach_then_attach_the_vif() {
    let tb = match Testbed::boot(Options::new().image("httpd", build_app("httpd"))) {
        Ok(tb) => tb,
        Err(TestbedError::Unavailable(why)) => {
            eprintln!("skipped: {why}");
            return;
        }
        Err(e) => panic!("{e}"),
    };
    let (name, url) = ("hotplug", "http://10.0.9.6/");
    tb.create(&Domu::image(name, "httpd", DomuType::Pv).vif(true).extra("ip=10.0.9.6/24"))
        .unwrap_or_else(|e| panic!("{e}"));
    let console = || tb.console_log(name).unwrap_or_default();
    let page =
        tb.wait_fetch(url, name, Duration::from_secs(120)).unwrap_or_else(|e| panic!("{e}\n{}", console()));
    assert!(page.contains("It works"), "{page}");

    tb.ok(&format!("xl network-detach {name} 0")).unwrap_or_else(|e| panic!("{e}"));
    tb.wait_console(name, "net: link down", Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("the stack did not see the card go: {e}\n{}", console()));
    assert_eq!(tb.fetch(url).unwrap_or_else(|e| panic!("{e}")), None, "no page without a card");

    tb.ok(&format!("xl network-attach {name} bridge=xenbr0")).unwrap_or_else(|e| panic!("{e}"));
    tb.wait_console(name, "net: link up on a new card", Duration::from_secs(90))
        .unwrap_or_else(|e| panic!("the new card was not taken up: {e}\n{}", console()));
    let page =
        tb.wait_fetch(url, name, Duration::from_secs(60)).unwrap_or_else(|e| panic!("{e}\n{}", console()));
    assert!(page.contains("It works"), "served again: {page}");
    tb.destroy(name).unwrap_or_else(|e| panic!("{e}"));
}
