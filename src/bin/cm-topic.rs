fn main() {
    claudemesh::cli::main(
        &claudemesh::tools::topic::TOOL,
        claudemesh::tools::topic::run,
    )
}
