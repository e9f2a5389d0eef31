fn main() {
    claudemesh::cli::main(
        &claudemesh::tools::broker::TOOL,
        claudemesh::tools::broker::run,
    )
}
