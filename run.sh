#!/usr/bin/env bash
# Chameleon's front door: sets the machine up (toolchain, kernel target, Debian
# packages), then hands boots, Xen runs and benchmarks to the Rust harness in tests/
# (tests/src/bin/chameleon.rs and bench.rs), which builds every QEMU command line.
#
#   ./run.sh [APP] [-- QEMU_ARGS...]   build APP (default: httpd) and boot it in QEMU;
#                                      `./run.sh kv` serves Redis's protocol at
#                                      127.0.0.1:6379 (redis-cli -p 6379)
#   ./run.sh build [APP]               build APP and print the image path
#   ./run.sh image [APP] [--format iso|raw|qcow2]
#                                      build APP (default: httpd) and write a GRUB image
#                                      that boots on BIOS and UEFI (target/images/APP.*),
#                                      with CMDLINE baked in and GRUB_TIMEOUT seconds of
#                                      menu (default 3); prints its path and QEMU commands
#   ./run.sh test                      run every test: host unit tests, then QEMU boots
#   ./run.sh bench KIND [OPTIONS]      boot, pvops, first200, http, soak, xen-http, kv
#                                      (BENCHMARKS.md)
#   ./run.sh xen pv|pvh [APP]          boot APP (default: hello) as a Xen 4.17 dom0, Xen
#                                      itself under QEMU TCG; stops when Xen reports the
#                                      dom0 halted (exit 0) or crashed (exit 1)
#   ./run.sh xen domu pv|pvh [APP]     boot Xen with Debian's Linux as dom0 (toolstack,
#                                      netback, bridge xenbr0 at 10.0.9.1), create APP
#                                      (default: httpd) as domU `chameleon` with a vif and
#                                      ip=10.0.9.2/24, show its console, then give the
#                                      terminal dom0's shell (`poweroff -f` ends it)
#   ./run.sh fuzz [TARGET] [--seconds N]  run every cargo-fuzz target in fuzz/ (or one)
#                                      for N seconds each (default 60); exit 1 on a crash
#
# Environment: ACCEL=kvm|tcg (default: kvm when /dev/kvm is usable and the CPU has
# hardware virtualisation, else tcg), MEM (MiB, default 64), MACHINE (default pc),
# CMDLINE (kernel command line; app arguments go after ` -- `), PORT (host port
# forwarded to the guest's port 80, default 8080; for kv its port 6379, default 6379),
# NET=user|tap (tap: the guest sits on a tap device in the network namespace `chameleon`
# at 10.0.3.2, reached with `ip netns exec chameleon curl http://10.0.3.2/`; needs
# root), NIC=virtio|vmxnet3|e1000|e1000e (the card's model, default virtio).
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
    # Paths are files the packages install: GRUB's BIOS and UEFI modules, and OVMF.
    for pair in qemu-system-x86_64:qemu-system-x86 curl:curl wrk:wrk ip:iproute2 gcc:gcc strip:binutils cpio:cpio xz:xz-utils \
        grub-mkrescue:grub-common /usr/lib/grub/i386-pc/multiboot2.mod:grub-pc-bin \
        /usr/lib/grub/x86_64-efi/multiboot2.mod:grub-efi-amd64-bin xorriso:xorriso mformat:mtools \
        qemu-img:qemu-utils /usr/share/ovmf/OVMF.fd:ovmf; do
        cmd=${pair%%:*} pkg=${pair#*:}
        if [[ $cmd == /* ]]; then [ -e "$cmd" ] || missing+=("$pkg"); else command -v "$cmd" >/dev/null || missing+=("$pkg"); fi
    done
    if [ ${#missing[@]} -gt 0 ]; then
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
            echo "run.sh: installing ${missing[*]}" >&2
            apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
        fi
        command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 not found: apt-get install qemu-system-x86"
    fi
}

# The harness binary NAME with ARGS, in place of this shell so that Ctrl-C and the exit
# status are its own.
harness() {
    local bin=$1; shift
    setup
    exec cargo run --release -q -p tests --bin "$bin" -- "$@"
}

# Runs the cargo-fuzz targets of fuzz/ (FUZZING.md) for a bounded time each, on a
# working copy of the committed seed corpus in target/fuzz/corpus/TARGET (it grows
# there from run to run; fuzz/corpus stays as committed). A crashing input lands in
# target/fuzz/artifacts/TARGET/ and its path is printed. Without nightly or cargo-fuzz
# it says so and exits 0, so CI without them is not failed by it. It stays here, not in
# the harness: it boots nothing, and drives another toolchain on fuzz/'s own workspace.
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
    build|image|xen)
        harness chameleon "$@"
        ;;
    test)
        setup
        # Host unit tests, then the integration tests in tests/, which build the kernel
        # images and boot them (on the host the kernel and the apps compile to stubs).
        log=$(mktemp)
        status=0
        cargo test --workspace --no-fail-fast 2>&1 | tee "$log" || status=$?
        awk '/^test result:/ { passed += $4; failed += $6 }
             END { printf "\ntests: %d passed, %d failed\n", passed, failed }' "$log"
        rm -f "$log"
        exit "$status"
        ;;
    bench)
        shift
        harness bench "$@"
        ;;
    fuzz)
        shift
        fuzz "$@"
        ;;
    -h|--help|help)
        # The header comment, whatever its length.
        awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
        ;;
    *)
        harness chameleon run "$@"
        ;;
esac
