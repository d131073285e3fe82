fn main() -> std::process::ExitCode {
    magnum::main_as(Some(magnum::Program::DriverManage))
}
