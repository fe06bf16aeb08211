#!/bin/sh
# /init of the control domU: Debian's Linux with netfront eth0 (ip= from its command
# line) and busybox httpd, to show that dom0's side of the network works on its own.
# With `site` on the command line it serves httpd's site (/site) instead of its own page;
# with `nginx` too, nginx serves it (when the testbed put nginx in, /etc/nginx.conf).
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
IP=10.0.9.2/24 WWW=/www SERVER=httpd
for a in $(cat /proc/cmdline); do
    case $a in ip=*) IP=${a#ip=} ;; site) WWW=/site ;; nginx) SERVER=nginx ;; esac
done
insmod /xen-netfront.ko
i=0; while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
ip link set lo up
ip addr add "$IP" dev eth0 && ip link set eth0 up || echo "domu: no eth0"
mkdir -p /www
echo "Linux $(uname -r) as a Xen $(cat /sys/hypervisor/guest_type 2>/dev/null) domU at $IP" > /www/index.html
if [ $SERVER = nginx ]; then
    /usr/sbin/nginx -c /etc/nginx.conf -p /tmp -e stderr && echo "domu: nginx listening on port 80"
else
    httpd -p 80 -h "$WWW" && echo "domu: httpd listening on port 80"
fi
while :; do sleep 3600; done
