fn main() -> std::process::ExitCode {
    magnum::main_as(None)
}
