fn main() {
    claudemesh::cli::main(
        &claudemesh::tools::peers::TOOL,
        claudemesh::tools::peers::run,
    )
}
