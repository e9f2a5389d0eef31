fn main() {
    claudemesh::cli::main(
        &claudemesh::tools::memory::TOOL,
        claudemesh::tools::memory::run,
    )
}
