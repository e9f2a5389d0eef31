fn main() {
    claudemesh::cli::main(
        &claudemesh::tools::launch::TOOL,
        claudemesh::tools::launch::run,
    )
}
