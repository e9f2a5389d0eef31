fn main() {
    claudemesh::cli::main(
        &claudemesh::tools::state::TOOL,
        claudemesh::tools::state::run,
    )
}
