fn main() {
    claudemesh::cli::main(
        &claudemesh::tools::remind::TOOL,
        claudemesh::tools::remind::run,
    )
}
