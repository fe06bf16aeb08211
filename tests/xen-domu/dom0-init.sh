#!/bin/sh
# /init of the domU testbed's dom0 (Debian's Linux as a Xen PV dom0; tests/src/xen_domu.rs).
# Brings up the toolstack and the bridge, then serves commands from the host on the
# console until told to hand it over (TB-SHELL) or left idle for TB_IDLE seconds.
# Lines starting "TB-" are the host's protocol; see xen_domu.rs for the other side.
export PATH=/usr/lib/xen-4.17/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root TERM=dumb
mark() { echo "TB-MARK $1 $(cut -d' ' -f1 /proc/uptime)"; }
fail() { echo "TB-FATAL $*"; poweroff -f; sleep 10; }

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /tmp /run /var/log/xen/console /var/lib/xen /var/lib/xenstored /root
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /run
mkdir -p /run/xen /run/xenstored /run/lock /run/tb
ln -sfn /run /var/run
exec </dev/console >/dev/console 2>&1
mark init
. /testbed/params

# Debian's .deb ships no modules.dep: the order is each module's depends= by hand.
# xenfs needs xen-privcmd, which Debian builds as a module.
for m in llc stp bridge xen-privcmd xenfs xen-evtchn xen-gntdev xen-gntalloc xen-netback; do
    insmod /lib/modules/$m.ko || fail "insmod $m"
done
mount -t xenfs xenfs /proc/xen || fail "mount xenfs"
grep -q control_d /proc/xen/capabilities || fail "not the control domain"
# From here on the console carries only the protocol (and Xen's own lines).
dmesg -n 1

ip link set lo up
# busybox's brctl cannot set STP or the forward delay: sysfs can.
brctl addbr xenbr0 || fail "brctl addbr xenbr0"
echo 0 > /sys/class/net/xenbr0/bridge/stp_state
echo 0 > /sys/class/net/xenbr0/bridge/forward_delay
ip addr add 10.0.9.1/24 dev xenbr0
ip link set xenbr0 up

xenstored --pid-file /run/xen/xenstored.pid || fail "xenstored"
i=0; while [ ! -s /run/xen/xenstored.pid ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
timeout 20 xen-init-dom0 || fail "xen-init-dom0"
xenconsoled --pid-file=/run/xen/xenconsoled.pid --log=guest --log-dir=/var/log/xen/console \
    --timestamp=none || fail "xenconsoled"
timeout 30 xl list >/dev/null || fail "xl list"
mark toolstack

# The command loop. The host types one of:
#   +CHUNK                      part of a command; answered "TB-ACK <bytes so far>"
#   !ID SECONDS LENGTH CHUNK    the last part: run the command under `timeout SECONDS`,
#                               framed by "TB-BEGIN ID" and "TB-END ID STATUS"
#   TB-SHELL                    hand the console to an interactive shell
# Commands come in parts because Xen queues at most 128 bytes of serial input for dom0
# and drops the rest. The length check catches a byte lost anyway.
stty -echo
echo "TB-READY"
cmd=
while IFS= read -r -t "$TB_IDLE" line; do
    case $line in
        +*)
            cmd=$cmd${line#+}
            echo "TB-ACK ${#cmd}"
            continue ;;
        !*) ;;
        TB-SHELL)
            stty echo
            echo "dom0: a shell on the console; 'poweroff -f' ends the testbed"
            PS1='dom0:$PWD# ' TERM=vt100 setsid cttyhack sh
            break ;;
        *)
            echo "TB-GARBLED unknown line: $line"
            cmd=
            continue ;;
    esac
    line=${line#!}
    id=${line%% *}; line=${line#* }
    secs=${line%% *}; line=${line#* }
    len=${line%% *}; line=${line#* }
    cmd=$cmd$line
    if [ "${#cmd}" != "$len" ]; then
        echo "TB-GARBLED $id: got ${#cmd} bytes, expected $len: $cmd"
        cmd=
        continue
    fi
    echo "TB-BEGIN $id"
    timeout "$secs" sh -c "$cmd" </dev/null >/run/tb/out 2>&1
    status=$?
    # Each line of output behind a '|', which tells it from Xen's own lines on the
    # same serial line; awk also ends the last one, so the end marker has its own.
    awk '{ print "|" $0 }' /run/tb/out
    echo "TB-END $id $status"
    cmd=
done
echo "TB-POWEROFF"
poweroff -f
sleep 10
