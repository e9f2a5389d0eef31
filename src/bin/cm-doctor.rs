fn main() {
    claudemesh::cli::main(
        &claudemesh::tools::doctor::TOOL,
        claudemesh::tools::doctor::run,
    )
}
