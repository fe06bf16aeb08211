fn main() {
    linker::link_kernel_image();
}
