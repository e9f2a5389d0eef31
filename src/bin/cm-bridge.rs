fn main() {
    claudemesh::cli::main(
        &claudemesh::tools::bridge::TOOL,
        claudemesh::tools::bridge::run,
    )
}
