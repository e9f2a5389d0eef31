fn main() {
    claudemesh::cli::main(
        &claudemesh::tools::bench::TOOL,
        claudemesh::tools::bench::run,
    )
}
