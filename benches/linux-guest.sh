#!/usr/bin/env bash
# Builds the Linux guest that `./run.sh bench http` compares httpd with: Debian's cloud
# kernel and an initramfs whose init loads the virtio-net modules, configures
# 10.0.2.15/24 and runs busybox httpd on port 80 serving httpd's default site.
#
#   benches/linux-guest.sh OUT_DIR      -> OUT_DIR/vmlinuz, OUT_DIR/initrd.cpio.gz
set -euo pipefail
out=$(realpath -m "${1:?usage: linux-guest.sh OUT_DIR}")
site=$(realpath "$(dirname "$0")/../apps/httpd/site")
[ -s "$out/vmlinuz" ] && [ -s "$out/initrd.cpio.gz" ] && exit 0
mkdir -p "$out/debs" && cd "$out/debs"
command -v cpio >/dev/null || apt-get install -y -qq cpio >/dev/null
kernel_pkg=$(apt-cache depends linux-image-cloud-amd64 | awk '/Depends: linux-image/{print $2; exit}')
[ -n "$kernel_pkg" ] || { echo "linux-guest.sh: no linux-image-cloud-amd64 (apt-get update?)" >&2; exit 2; }
ls ./*.deb >/dev/null 2>&1 || apt-get download "$kernel_pkg" busybox-static >&2
rm -rf x && mkdir x && for d in ./*.deb; do dpkg -x "$d" x; done
cp x/boot/vmlinuz-* "$out/vmlinuz"
root="$out/root" && rm -rf "$root" && mkdir -p "$root"/{bin,proc,sys,dev,www,modules}
cp x/bin/busybox "$root/bin/busybox"
for m in virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci failover net_failover virtio_net; do
    cp "$(find x/lib/modules -name "$m.ko*" | head -n 1)" "$root/modules/"
done
cp -r "$site"/. "$root/www/"
cat > "$root/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs dev /dev
for m in virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci failover net_failover virtio_net; do
    insmod /modules/$m.ko* || echo "linux-guest: insmod $m failed"
done
echo "linux-guest: interfaces: $(ls /sys/class/net)"
ip link set lo up
ip link set eth0 up
ip addr add 10.0.2.15/24 dev eth0
ip route add default via 10.0.2.2
echo "linux-guest: serving"
exec httpd -f -p 80 -h /www
INIT
chmod +x "$root/init"
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1 > "$out/initrd.cpio.gz")
echo "linux-guest.sh: built $out/vmlinuz and $out/initrd.cpio.gz" >&2
