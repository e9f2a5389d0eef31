fn main() {
    claudemesh::cli::main(&claudemesh::tools::id::TOOL)
}
