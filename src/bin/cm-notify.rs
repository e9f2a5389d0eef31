fn main() {
    claudemesh::cli::main(
        &claudemesh::tools::notify::TOOL,
        claudemesh::tools::notify::run,
    )
}
