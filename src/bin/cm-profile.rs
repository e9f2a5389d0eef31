fn main() {
    claudemesh::cli::main(
        &claudemesh::tools::profile::TOOL,
        claudemesh::tools::profile::run,
    )
}
