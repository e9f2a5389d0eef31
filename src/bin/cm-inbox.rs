fn main() {
    claudemesh::cli::main(&claudemesh::tools::inbox::TOOL)
}
