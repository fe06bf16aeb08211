#!/bin/sh
# A vif hotplug script for the testbed's dom0 that does what Debian's vif-bridge does for
# a PV vif on a bridge, and no more: join the bridge named in the backend's xenstore
# directory, bring the link up, report "connected". vif-bridge also handles vifname,
# iptables, MTU and hooks, in bash sourcing three helper files; under QEMU TCG that
# costs about 2 s per `xl create`, the same for every guest, and hides how fast the
# guests themselves start. `xl` runs it as `vif-lean online|offline` with $vif and
# $XENBUS_PATH in the environment. Domu::vif_script selects it.
case "$1" in
online)
    bridge=$(xenstore-read "$XENBUS_PATH/bridge") || exit 1
    ip link set dev "$vif" master "$bridge" || exit 1
    ip link set dev "$vif" up || exit 1
    xenstore-write "$XENBUS_PATH/hotplug-status" connected
    ;;
offline)
    # The vif may be gone already (the domain destroyed); nothing is left to undo then.
    ip link set dev "$vif" nomaster 2>/dev/null
    exit 0
    ;;
*)
    echo "vif-lean: unknown command '$1'" >&2
    exit 1
    ;;
esac
