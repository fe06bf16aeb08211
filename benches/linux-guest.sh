#!/usr/bin/env bash
# Builds the Linux guest that `./run.sh bench http` compares httpd with (and `bench kv`
# compares kv with): Debian's cloud kernel (or, with `generic`, Debian's generic kernel,
# which also has the e1000, e1000e and vmxnet3 drivers the cloud kernel lacks in part)
# and an initramfs whose init loads the network card modules the kernel has (virtio-net,
# e1000, e1000e, vmxnet3, with what they depend on), configures 10.0.2.15/24 and serves
# httpd's default site on port 80 with nginx (kernel argument `server=nginx`, the
# default) or busybox httpd (`server=busybox`), or runs Debian's redis-server on port
# 6379 without persistence (`server=redis`); `guest_ip=A/N` replaces the address (and
# drops the route) for a tap network. Everything comes from Debian packages
# (redis-server's libraries from the host's, which are Debian's: redis-tools pulls them
# in).
#
#   benches/linux-guest.sh OUT_DIR [cloud|generic]  -> OUT_DIR/vmlinuz, OUT_DIR/initrd.cpio.gz
set -euo pipefail
out=$(realpath -m "${1:?usage: linux-guest.sh OUT_DIR [cloud|generic]}")
flavour=${2:-cloud}
case $flavour in
    cloud) meta=linux-image-cloud-amd64 ;;
    generic) meta=linux-image-amd64 ;;
    *) echo "linux-guest.sh: the kernel is cloud or generic, not $flavour" >&2; exit 2 ;;
esac
site=$(realpath "$(dirname "$0")/../apps/httpd/site")
[ -s "$out/vmlinuz" ] && [ -s "$out/initrd.cpio.gz" ] && [ -x "$out/root/bin/redis-server" ] && exit 0
mkdir -p "$out/debs" && cd "$out/debs"
command -v cpio >/dev/null || apt-get install -y -qq cpio >/dev/null
kernel_pkg=$(apt-cache depends "$meta" | awk '/Depends: linux-image/{print $2; exit}')
[ -n "$kernel_pkg" ] || { echo "linux-guest.sh: no $meta (apt-get update?)" >&2; exit 2; }
ls ./linux-image*.deb >/dev/null 2>&1 ||
    apt-get download "$kernel_pkg" busybox-static nginx libc6 libcrypt1 libpcre2-8-0 libssl3 zlib1g >&2
# redis-server's binary is redis-tools' redis-check-rdb under another name.
ls ./redis-tools*.deb >/dev/null 2>&1 || apt-get download redis-tools >&2
rm -rf x && mkdir x && for d in ./*.deb; do dpkg -x "$d" x; done
cp x/boot/vmlinuz-* "$out/vmlinuz"
echo "$kernel_pkg" > "$out/kernel"
root="$out/root" && rm -rf "$root" && mkdir -p "$root"/{bin,proc,sys,dev,www,modules}
cp x/bin/busybox "$root/bin/busybox"
# The card modules this kernel has, each after the modules it depends on (the `depends=`
# of its .modinfo section), listed in load order in modules/order.
add_module() {
    grep -qx "$1" "$root/modules/order" 2>/dev/null && return 0
    local ko
    ko=$(find x/lib/modules -name "$1.ko" | head -n 1)
    [ -n "$ko" ] || return 0 # built in, or not in this kernel
    local dep
    for dep in $(grep -a -o 'depends=[a-z0-9_,-]*' "$ko" | head -n 1 | cut -d= -f2 | tr , ' '); do
        add_module "$dep"
    done
    cp "$ko" "$root/modules/"
    echo "$1" >> "$root/modules/order"
}
for m in virtio_pci virtio_net e1000 e1000e vmxnet3; do add_module "$m"; done
cp -r "$site"/. "$root/www/"
mkdir -p "$root/lib64" "$root/lib/x86_64-linux-gnu" "$root/etc/nginx" "$root/tmp" "$root/var/log/nginx"
echo "root:x:0:0:root:/:/bin/sh" > "$root/etc/passwd"
echo "root:x:0:" > "$root/etc/group"
cp x/usr/sbin/nginx "$root/bin/nginx"
for lib in ld-linux-x86-64.so.2 libc.so.6 libcrypt.so.1 libpcre2-8.so.0 libssl.so.3 libcrypto.so.3 libz.so.1; do
    cp -L "$(find x -name "$lib" | head -n 1)" "$root/lib/x86_64-linux-gnu/$lib"
done
ln -sf /lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 "$root/lib64/ld-linux-x86-64.so.2"
cp x/usr/bin/redis-check-rdb "$root/bin/redis-server"
for lib in $(ldd x/usr/bin/redis-check-rdb | awk '/=> \//{print $3}'); do
    [ -e "$root/lib/x86_64-linux-gnu/$(basename "$lib")" ] || cp -L "$lib" "$root/lib/x86_64-linux-gnu/"
done
cat > "$root/etc/nginx/nginx.conf" <<'CONF'
daemon off;
master_process off;
worker_processes 1;
user root;
error_log stderr error;
pid /tmp/nginx.pid;
events { worker_connections 4096; }
http {
    access_log off;
    sendfile on;
    keepalive_requests 1000000;
    client_body_temp_path /tmp/body;
    proxy_temp_path /tmp/proxy;
    fastcgi_temp_path /tmp/fastcgi;
    uwsgi_temp_path /tmp/uwsgi;
    scgi_temp_path /tmp/scgi;
    types { text/html html; text/css css; image/png png; text/plain txt; }
    server { listen 80; root /www; }
}
CONF
cat > "$root/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs dev /dev
for m in $(cat /modules/order); do
    insmod /modules/$m.ko || echo "linux-guest: insmod $m failed"
done
echo "linux-guest: interfaces: $(ls /sys/class/net)"
ip link set lo up
ip link set eth0 up
addr=10.0.2.15/24 gw=10.0.2.2
for arg in $(cat /proc/cmdline); do
    case $arg in guest_ip=*) addr=${arg#guest_ip=} gw= ;; esac
done
ip addr add "$addr" dev eth0
[ -n "$gw" ] && ip route add default via "$gw"
case " $(cat /proc/cmdline) " in
    *" server=busybox "*) echo "linux-guest: serving with busybox httpd"; exec httpd -f -p 80 -h /www ;;
    *" server=redis "*)
        echo "linux-guest: serving with redis-server"
        exec /bin/redis-server --port 6379 --bind 0.0.0.0 --protected-mode no --save '' --appendonly no --dir /tmp ;;
    *) echo "linux-guest: serving with nginx"; exec /bin/nginx -c /etc/nginx/nginx.conf -p /tmp ;;
esac
INIT
chmod +x "$root/init"
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1 > "$out/initrd.cpio.gz")
echo "linux-guest.sh: built $out/vmlinuz and $out/initrd.cpio.gz" >&2
