fn main() {
    claudemesh::cli::main(
        &claudemesh::tools::inbox::TOOL,
        claudemesh::tools::inbox::run,
    )
}
