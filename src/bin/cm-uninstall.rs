fn main() {
    claudemesh::cli::main(
        &claudemesh::tools::uninstall::TOOL,
        claudemesh::tools::uninstall::run,
    )
}
