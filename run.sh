#!/usr/bin/env bash
# Chameleon's front door.
#
#   ./run.sh [APP] [-- QEMU_ARGS...]   build APP (default: httpd) and boot it in QEMU
#   ./run.sh build [APP]               build APP and print the image path
#   ./run.sh test                      run every test: host unit tests, then QEMU boots
#   ./run.sh bench boot [--runs N]     QEMU start -> exit of hello vs a bare PVH stub
#   ./run.sh xen pv|pvh [APP]          boot APP (default: hello) as a Xen 4.17 dom0, Xen
#                                      itself under QEMU TCG; stops when Xen reports the
#                                      dom0 halted (exit 0) or crashed (exit 1)
#   ./run.sh fuzz [TARGET] [--seconds N]  run every cargo-fuzz target in fuzz/ (or one)
#                                      for N seconds each (default 60); exit 1 on a crash
#
# Environment: ACCEL=kvm|tcg (default: kvm when /dev/kvm is usable and the CPU has
# hardware virtualisation, else tcg), MEM (MiB, default 64), MACHINE (default pc),
# CMDLINE (kernel command line; app arguments go after ` -- `), PORT (host port
# forwarded to the guest's port 80, default 8080), NET=user|tap (tap: the guest sits on
# a tap device in the network namespace `chameleon` at 10.0.3.2, reached with
# `ip netns exec chameleon curl http://10.0.3.2/`; needs root).
set -euo pipefail
cd "$(dirname "$0")"

TARGET=x86_64-unknown-none
die() { echo "run.sh: $*" >&2; exit 2; }

# Makes the pinned toolchain (rust-toolchain.toml) and the kernel target available,
# and QEMU when we may install it.
setup() {
    command -v rustup >/dev/null || die "rustup not found: install Rust with rustup"
    local pinned
    pinned=$(sed -n 's/^channel = "\(.*\)"/\1/p' rust-toolchain.toml)
    if ! rustup toolchain list | grep -q "^$pinned"; then
        # The machine's stable toolchain may be this very version under another name.
        local stable_version
        stable_version=$(rustc +stable --version 2>/dev/null | awk '{print $2}')
        [ "$stable_version" = "$pinned" ] || die "Rust $pinned is not installed (rustup toolchain install $pinned)"
        rustup toolchain link "$pinned" "$(rustc +stable --print sysroot)"
    fi
    if [ ! -d "$(rustc --print sysroot)/lib/rustlib/$TARGET" ]; then
        echo "run.sh: adding the $TARGET target" >&2
        # A linked toolchain cannot take components; its stable twin shares the sysroot.
        rustup target add "$TARGET" >&2 || rustup +stable target add "$TARGET" >&2 ||
            die "could not add the $TARGET target (rustup target add $TARGET)"
    fi
    # Commands the boots, tests and benchmarks use, and the Debian packages with them.
    local missing=() cmd pkg
    for pair in qemu-system-x86_64:qemu-system-x86 curl:curl wrk:wrk ip:iproute2 gcc:gcc strip:binutils cpio:cpio; do
        cmd=${pair%%:*} pkg=${pair#*:}
        command -v "$cmd" >/dev/null || missing+=("$pkg")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
            echo "run.sh: installing ${missing[*]}" >&2
            apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
        fi
        command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 not found: apt-get install qemu-system-x86"
    fi
}

build() {
    local app=$1
    [ -d "apps/$app" ] || die "no app '$app' (apps: $(ls apps | tr '\n' ' '))"
    setup
    cargo build --release --target "$TARGET" -p "$app" >&2 || die "building $app failed"
    echo "target/$TARGET/release/$app"
}

# KVM only helps where the CPU really virtualises: an emulated /dev/kvm (no vmx/svm
# flag, as in some sandboxes) is far slower than TCG.
default_accel() {
    if [ -r /dev/kvm ] && [ -w /dev/kvm ] && grep -qwE 'vmx|svm' /proc/cpuinfo; then
        echo kvm
    else
        echo tcg
    fi
}

# The network namespace `chameleon` with tap0 at 10.0.3.1/24, made once.
tap_namespace() {
    [ "$(id -u)" = 0 ] || die "NET=tap needs root (it creates a network namespace)"
    ip netns list | grep -qw chameleon && return
    ip netns add chameleon
    ip -n chameleon link set lo up
    ip -n chameleon tuntap add dev tap0 mode tap
    ip -n chameleon addr add 10.0.3.1/24 dev tap0
    ip -n chameleon link set tap0 up
}

boot() {
    local app=$1; shift
    local image accel cpu
    image=$(build "$app")
    accel=${ACCEL:-$(default_accel)}
    # QEMU 7.2's `-cpu host` aborts under KVM on MSR 0x10a unless arch-capabilities is off.
    case $accel in
        kvm) cpu="host,-arch-capabilities" ;;
        *) cpu="max" ;;
    esac
    local cmd=() netdev url cmdline=${CMDLINE:-}
    case ${NET:-user} in
        user)
            netdev="user,id=net0,hostfwd=tcp:127.0.0.1:${PORT:-8080}-:80"
            url="http://127.0.0.1:${PORT:-8080}/"
            ;;
        tap)
            tap_namespace
            cmd=(ip netns exec chameleon)
            netdev="tap,id=net0,ifname=tap0,script=no,downscript=no"
            url="http://10.0.3.2/ inside the namespace (ip netns exec chameleon curl http://10.0.3.2/)"
            case " $cmdline " in *" ip="*) ;; *) cmdline="ip=10.0.3.2/24 $cmdline" ;; esac
            ;;
        *) die "NET must be user or tap" ;;
    esac
    # microvm has no PCI bus: its card is virtio-mmio, found through ACPI's DSDT.
    local nic=virtio-net-pci
    case ${MACHINE:-pc} in microvm*) nic=virtio-net-device ;; esac
    cmd+=(qemu-system-x86_64 -accel "$accel" -cpu "$cpu" -M "${MACHINE:-pc}" -m "${MEM:-64}"
        -display none -nodefaults -no-reboot -serial stdio
        -device isa-debug-exit,iobase=0x501,iosize=2
        -netdev "$netdev"
        -device "$nic,netdev=net0"
        -kernel "$image")
    [ -n "$cmdline" ] && cmd+=(-append "$cmdline")
    cmd+=("$@")
    echo "\$ ${cmd[*]}" >&2
    [ "$app" = httpd ] && echo "run.sh: httpd will answer at $url once it prints 'listening' (Ctrl-C stops QEMU)" >&2
    local status=0
    "${cmd[@]}" || status=$?
    # isa-debug-exit makes QEMU exit with (code << 1) | 1: hand the app's code back.
    if [ $((status % 2)) -eq 1 ]; then
        exit $(((status - 1) / 2))
    fi
    exit "$status"
}

# Xen 4.17 from Debian, unpacked once into target/xen (as the tests fetch it).
xen_binary() {
    local dir=target/xen
    if [ ! -f "$dir/xen-4.17" ]; then
        mkdir -p "$dir"
        (cd "$dir" && apt-get download xen-hypervisor-4.17-amd64 >/dev/null &&
            dpkg -x xen-hypervisor-4.17-amd64_*.deb x && zcat x/boot/xen-4.17-amd64.gz > xen-4.17.tmp &&
            mv xen-4.17.tmp xen-4.17 && rm -rf x ./*.deb) >&2 ||
            die "could not fetch Xen 4.17 (apt-get download xen-hypervisor-4.17-amd64)"
    fi
    echo "$dir/xen-4.17"
}

# Boots APP as Xen's dom0 (PV: ring 3, the xen_pv backend; PVH: the xen_hvm backend,
# which Xen 4.17 runs only with an IOMMU). QEMU keeps running after Xen halts, so the
# serial output is watched for Xen's verdict.
xen() {
    local mode=${1:-pv} app=${2:-hello} image xen machine args
    image=$(build "$app")
    xen=$(xen_binary)
    local extra=()
    case $mode in
        pv) machine=pc args="" ;;
        pvh) machine=q35,kernel-irqchip=split args="dom0=pvh iommu=1" extra=(-device intel-iommu,intremap=on) ;;
        *) die "xen: expected pv or pvh, got '$mode'" ;;
    esac
    local cmd=(qemu-system-x86_64 -accel tcg -cpu max -M "$machine" -m 512 -display none -nodefaults
        -serial stdio -kernel "$xen" -append "console=com1 com1=115200,8n1 noreboot guest_loglvl=all dom0_mem=${MEM:-64}M $args"
        -initrd "$image ${CMDLINE:-}" "${extra[@]}")
    echo "\$ ${cmd[*]}" >&2
    local fifo status=1
    fifo=$(mktemp -u)
    mkfifo "$fifo"
    "${cmd[@]}" > "$fifo" &
    local qemu=$!
    while IFS= read -r line; do
        printf '%s\n' "$line"
        case $line in
            *"Hardware Dom0 halted"*) status=0; break ;;
            *"Hardware Dom0 crashed"*) status=1; break ;;
        esac
    done < "$fifo"
    kill "$qemu" 2>/dev/null || true
    wait "$qemu" 2>/dev/null || true
    rm -f "$fifo"
    exit "$status"
}

# Runs the cargo-fuzz targets of fuzz/ (FUZZING.md) for a bounded time each, on a
# working copy of the committed seed corpus in target/fuzz/corpus/TARGET (it grows
# there from run to run; fuzz/corpus stays as committed). A crashing input lands in
# target/fuzz/artifacts/TARGET/ and its path is printed. Without nightly or cargo-fuzz
# it says so and exits 0, so CI without them is not failed by it.
fuzz() {
    local seconds=60 targets=()
    while [ $# -gt 0 ]; do
        case $1 in
            --seconds) seconds=${2:-}; shift 2 || die "fuzz: --seconds needs a number" ;;
            --seconds=*) seconds=${1#*=}; shift ;;
            -*) die "fuzz: unknown option '$1'" ;;
            *) targets+=("$1"); shift ;;
        esac
    done
    [[ $seconds =~ ^[1-9][0-9]*$ ]] || die "fuzz: --seconds takes a whole number of seconds, got '$seconds'"
    if ! rustup toolchain list | grep -q '^nightly'; then
        echo "run.sh: fuzzing needs the nightly toolchain (rustup toolchain install nightly); skipped" >&2
        exit 0
    fi
    if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
        echo "run.sh: fuzzing needs cargo-fuzz (cargo +nightly install cargo-fuzz --locked); skipped" >&2
        exit 0
    fi
    local known
    known=$(cd fuzz && cargo +nightly fuzz list)
    [ ${#targets[@]} -gt 0 ] || mapfile -t targets <<< "$known"
    local t
    for t in "${targets[@]}"; do
        grep -qx "$t" <<< "$known" || die "fuzz: no target '$t' (targets: $(echo $known))"
    done
    # No sanitizer: the fuzzed crates forbid unsafe code, so AddressSanitizer would
    # only halve the executions; overflow checks and assertions stay on.
    local build=(-s none)
    (cd fuzz && cargo +nightly fuzz build "${build[@]}") >&2 || die "fuzz: building the targets failed"
    local work=$PWD/target/fuzz crashed=() log
    printf '%-18s %8s %12s %9s %s\n' target seconds executions exec/s crashes
    for t in "${targets[@]}"; do
        mkdir -p "$work/corpus/$t" "$work/artifacts/$t"
        cp fuzz/corpus/"$t"/* "$work/corpus/$t/"
        log=$work/$t.log
        echo "\$ (cd fuzz && cargo +nightly fuzz run ${build[*]} $t $work/corpus/$t -- -dict=dict/$t.dict -max_total_time=$seconds -artifact_prefix=$work/artifacts/$t/ -print_final_stats=1)" >&2
        local status=0
        (cd fuzz && cargo +nightly fuzz run "${build[@]}" "$t" "$work/corpus/$t" -- -dict="dict/$t.dict" \
            -max_total_time="$seconds" -artifact_prefix="$work/artifacts/$t/" -print_final_stats=1) > "$log" 2>&1 ||
            status=$?
        local runs speed found=0
        runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
        speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
        if [ "$status" -ne 0 ]; then
            found=1
            local input
            input=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -1)
            crashed+=("$t: ${input:-no input saved, see $log}")
        fi
        printf '%-18s %8s %12s %9s %s\n' "$t" "$seconds" "${runs:-?}" "${speed:-?}" "$found"
    done
    if [ ${#crashed[@]} -gt 0 ]; then
        echo "run.sh: fuzzing found crashes (logs in $work/TARGET.log); reproduce one with" >&2
        echo "  (cd fuzz && cargo +nightly fuzz run -s none TARGET INPUT):" >&2
        printf '  %s\n' "${crashed[@]}" >&2
        exit 1
    fi
}

case "${1:-}" in
    build)
        build "${2:-httpd}"
        ;;
    test)
        setup
        # The kernel and the apps only build for the kernel target; the harness in
        # tests/ builds and boots them.
        log=$(mktemp)
        status=0
        cargo test --workspace --exclude kernel --exclude hello --exclude httpd --exclude udp-echo --no-fail-fast 2>&1 | tee "$log" || status=$?
        awk '/^test result:/ { passed += $4; failed += $6 }
             END { printf "\ntests: %d passed, %d failed\n", passed, failed }' "$log"
        rm -f "$log"
        exit "$status"
        ;;
    bench)
        shift
        setup
        cargo run --release -q -p tests --bin bench -- "$@"
        ;;
    xen)
        shift
        xen "$@"
        ;;
    fuzz)
        shift
        fuzz "$@"
        ;;
    -h|--help|help)
        sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'
        ;;
    *)
        app=httpd
        if [ $# -gt 0 ] && [ "$1" != "--" ]; then app=$1; shift; fi
        [ "${1:-}" = "--" ] && shift
        boot "$app" "$@"
        ;;
esac
