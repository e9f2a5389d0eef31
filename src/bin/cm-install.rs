fn main() {
    claudemesh::cli::main(
        &claudemesh::tools::install::TOOL,
        claudemesh::tools::install::run,
    )
}
